using System.ComponentModel.DataAnnotations;

namespace Gateway.Api.Telemetry;

/// <summary>
/// OTLP export of traces and metrics (section <c>Gateway:Otlp</c>). Off unless <see cref="Endpoint"/> or the standard
/// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set; with only the latter, every <c>OTEL_EXPORTER_OTLP_*</c> variable applies as
/// the OpenTelemetry SDK defines it.
/// </summary>
public sealed class OtlpOptions
{
    public const string SectionName = "Gateway:Otlp";

    public const string Grpc = "grpc";
    public const string HttpProtobuf = "http/protobuf";

    /// <summary>The collector's base URL (e.g. <c>http://otel-collector:4317</c>); for http/protobuf, /v1/traces and /v1/metrics are appended.</summary>
    public Uri? Endpoint { get; set; }

    /// <summary><c>grpc</c> (port 4317 by convention) or <c>http/protobuf</c> (4318).</summary>
    [AllowedValues(Grpc, HttpProtobuf)]
    public string Protocol { get; set; } = Grpc;
}

/// <summary>Data-annotation checks of <see cref="OtlpOptions"/>, generated at build time (Native AOT).</summary>
[Microsoft.Extensions.Options.OptionsValidator]
internal sealed partial class OtlpOptionsValidator : Microsoft.Extensions.Options.IValidateOptions<OtlpOptions>;
