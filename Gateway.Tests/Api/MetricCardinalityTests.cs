using System.Diagnostics.Metrics;
using Gateway.Api.Telemetry;
using Gateway.Core.Metering;

namespace Gateway.Tests.Api;

/// <summary>
/// The framework's instruments get a smaller label-set reservation; the gateway's own, labelled per provider and model, must keep
/// the SDK's default, or a deployment with many models would see its spend metrics folded into the overflow set.
/// </summary>
public sealed class MetricCardinalityTests
{
    [Fact]
    public void GatewayInstruments_KeepTheDefault_FrameworkOnesAreBounded()
    {
        using var gateway = new Meter(GatewayMetrics.MeterName);
        using var runtime = new Meter("System.Runtime");
        using var hosting = new Meter("Microsoft.AspNetCore.Hosting");
        using var client = new Meter("System.Net.Http");

        Assert.Null(TelemetryServiceCollectionExtensions.FrameworkCardinality(gateway.CreateHistogram<double>("gen_ai.client.token.usage")));
        Assert.Equal(TelemetryServiceCollectionExtensions.FrameworkCardinalityLimit,
            TelemetryServiceCollectionExtensions.FrameworkCardinality(runtime.CreateCounter<long>("dotnet.gc.collections"))!.CardinalityLimit);
        Assert.Equal(TelemetryServiceCollectionExtensions.FrameworkHttpCardinality,
            TelemetryServiceCollectionExtensions.FrameworkCardinality(hosting.CreateHistogram<double>("http.server.request.duration"))!.CardinalityLimit);
        Assert.Equal(TelemetryServiceCollectionExtensions.FrameworkHttpCardinality,
            TelemetryServiceCollectionExtensions.FrameworkCardinality(client.CreateHistogram<double>("http.client.request.duration"))!.CardinalityLimit);
    }
}
