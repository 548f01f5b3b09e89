using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Fixtures;

/// <summary>
/// An OpenTelemetry collector's OTLP/HTTP receiver (https://opentelemetry.io/docs/specs/otlp/#otlphttp): binary protobuf
/// POSTed to /v1/traces and /v1/metrics, answered 200 with an empty export response. Bodies are kept as Latin-1 text, so
/// the UTF-8 strings inside (attribute names and values) can be searched without decoding protobuf.
/// </summary>
public sealed class FakeOtlpCollector : FakeServer
{
    public static Task<FakeOtlpCollector> StartAsync() => StartAsync(new FakeOtlpCollector(), "");

    /// <summary>Everything received on <paramref name="path"/> (<c>/v1/traces</c> or <c>/v1/metrics</c>), concatenated.</summary>
    public string Received(string path) => string.Concat(Requests.Where(r => r.Path == path).Select(r => r.Body));

    protected override void Map(WebApplication app)
    {
        app.MapPost("/v1/traces", ReceiveAsync);
        app.MapPost("/v1/metrics", ReceiveAsync);
    }

    private async Task ReceiveAsync(HttpContext http)
    {
        using var body = new MemoryStream();
        await http.Request.Body.CopyToAsync(body);
        Requests.Enqueue(new RecordedRequest(Encoding.Latin1.GetString(body.ToArray()), "") { Path = http.Request.Path });
        http.Response.ContentType = "application/x-protobuf";
    }
}
