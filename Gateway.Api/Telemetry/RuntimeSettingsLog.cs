namespace Gateway.Api.Telemetry;

/// <summary>
/// One line at start with the garbage collector's settings as the runtime applied them (from the runtimeconfig, or the build's
/// own for Native AOT, or <c>DOTNET_</c> variables): what the process's memory depends on, readable in its log.
/// </summary>
internal static partial class RuntimeSettingsLog
{
    public static void LogGcSettings(ILogger logger)
    {
        var gc = GC.GetConfigurationVariables();
        var server = gc.GetValueOrDefault("ServerGC");
        var concurrent = gc.GetValueOrDefault("ConcurrentGC");
        var adaptation = gc.GetValueOrDefault("GCDynamicAdaptationMode");
        var gen0Growth = gc.GetValueOrDefault("GCDGen0GrowthMaxFactor");
        var conserve = gc.GetValueOrDefault("GCConserveMem");
        var hardLimit = gc.GetValueOrDefault("GCHeapHardLimit");
        GcSettings(logger, server, concurrent, adaptation, gen0Growth, conserve, hardLimit);
    }

    [LoggerMessage(EventId = 1950, Level = LogLevel.Information, Message = "Garbage collector: server {Server}, concurrent {Concurrent}, " +
        "dynamic adaptation {DynamicAdaptation}, gen0 budget at most {Gen0GrowthMaxFactorPermil} permil of live data, " +
        "conserve memory {ConserveMemory}, heap hard limit {HeapHardLimit} bytes")]
    private static partial void GcSettings(ILogger logger, object? server, object? concurrent, object? dynamicAdaptation,
        object? gen0GrowthMaxFactorPermil, object? conserveMemory, object? heapHardLimit);
}
