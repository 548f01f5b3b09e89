using Gateway.Core;
using Gateway.Core.Metering;
using Gateway.Core.Telemetry;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Gateway.Api.Telemetry;

internal static class TelemetryServiceCollectionExtensions
{
    /// <summary>
    /// Metrics (the <c>LlmGateway</c> meter, ASP.NET Core's and HttpClient's) for the Prometheus scrape at /metrics, always;
    /// with an OTLP endpoint configured, the same metrics and traces (the <c>LlmGateway</c> source, ASP.NET Core server spans,
    /// HttpClient spans) are exported too. Without one no tracer listens, so requests build no spans at all.
    /// </summary>
    public static WebApplicationBuilder AddGatewayTelemetry(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<OtlpOptions>().BindConfiguration(OtlpOptions.SectionName).ValidateAnnotations<OtlpOptions, OtlpOptionsValidator>().ValidateOnStart();
        // Read here, not through IOptions: whether to export decides which providers exist.
        var otlp = builder.Configuration.GetSection(OtlpOptions.SectionName).Get<OtlpOptions>() ?? new OtlpOptions();
        var export = otlp.Endpoint is not null || !string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);

        var telemetry = builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(builder.Configuration["OTEL_SERVICE_NAME"] ?? "llm-gateway"))
            .WithMetrics(metrics =>
            {
                // System.Runtime: the runtime's own meter (GC heap, working set, thread pool), read only at a scrape.
                metrics.AddMeter(GatewayMetrics.MeterName, "System.Runtime").AddAspNetCoreInstrumentation().AddHttpClientInstrumentation()
                    .AddView(FrameworkCardinality)
                    // Every scrape reads the instruments now (no 300 ms response cache): a scrape right after a change shows it.
                    .AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0);
                if (export) metrics.AddOtlpExporter(o => Configure(o, otlp, "v1/metrics"));
            });
        if (export)
        {
            telemetry.WithTracing(tracing => tracing
                .AddSource(GatewayTelemetry.SourceName)
                // Scrapes and probes would drown the requests that matter.
                .AddAspNetCoreInstrumentation(o => o.Filter = http =>
                    !http.Request.Path.StartsWithSegments("/metrics") && !http.Request.Path.StartsWithSegments("/health"))
                // Provider keys travel in headers (Authorization, x-api-key, x-goog-api-key), which are not recorded; query
                // values in url.full are redacted by default.
                .AddHttpClientInstrumentation()
                .AddOtlpExporter(o => Configure(o, otlp, "v1/traces")));
        }
        return builder;
    }

    /// <summary>
    /// The SDK allocates every metric stream's points up front, 2,000 by default: about 170 KB per instrument, 9 MB for the
    /// 54 this host has. The framework's instruments carry a handful of label sets each (a route, a status code, a GC
    /// generation), so they get fewer, and the gateway's own (a label set per provider and model) keep the default. A stream
    /// that fills up still counts what comes after, under <c>otel_metric_overflow="true"</c>.
    /// </summary>
    internal static MetricStreamConfiguration? FrameworkCardinality(System.Diagnostics.Metrics.Instrument instrument) =>
        instrument.Meter.Name switch
        {
            GatewayMetrics.MeterName => null,
            "Microsoft.AspNetCore.Hosting" or "System.Net.Http" => new() { CardinalityLimit = FrameworkHttpCardinality },
            _ => new() { CardinalityLimit = FrameworkCardinalityLimit },
        };

    /// <summary>HTTP server and client durations: method × route (or upstream host) × status × protocol.</summary>
    internal const int FrameworkHttpCardinality = 500;

    /// <summary>The runtime's, Kestrel's and the rest of ASP.NET Core's instruments.</summary>
    internal const int FrameworkCardinalityLimit = 100;

    // Gateway:Otlp:Endpoint is a base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is; with neither set here, the SDK's own
    // OTEL_EXPORTER_OTLP_* reading stands (headers for a collector's credentials come from OTEL_EXPORTER_OTLP_HEADERS either way).
    private static void Configure(OtlpExporterOptions exporter, OtlpOptions otlp, string signalPath)
    {
        if (otlp.Endpoint is not { } endpoint) return;
        exporter.Protocol = otlp.Protocol == OtlpOptions.HttpProtobuf ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
        exporter.Endpoint = exporter.Protocol == OtlpExportProtocol.HttpProtobuf
            ? new Uri(endpoint.AbsoluteUri.TrimEnd('/') + "/" + signalPath)
            : endpoint;
    }
}
