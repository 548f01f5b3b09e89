using System.ComponentModel.DataAnnotations;

namespace Gateway.Core.Metering;

/// <summary>Settings for the usage pipeline (section <c>Gateway:Metering</c>).</summary>
public sealed class MeteringOptions
{
    public const string SectionName = "Gateway:Metering";

    /// <summary>Records held in memory before requests wait for the writer (back-pressure, never a drop).</summary>
    [Range(1_000, 10_000_000)]
    public int ChannelCapacity { get; set; } = 200_000;

    /// <summary>Most records written in one COPY transaction.</summary>
    [Range(1, 100_000)]
    public int BatchSize { get; set; } = 5_000;

    /// <summary>On shutdown, the most time spent writing what is still queued (after the web server stopped).</summary>
    [Range(1, 3600)]
    public int FlushTimeoutSeconds { get; set; } = 60;
}
