using System.Buffers;

namespace Gateway.Api.Endpoints;

/// <summary>
/// How front doors write their answers: the one writer of server-sent events in the gateway: a <c>data:</c> line and the blank line that ends the event, written straight
/// into the response's pipe (the chunks are JSON already; see README "Dependencies" for why not <c>TypedResults.ServerSentEvents</c>).
/// </summary>
internal static class ServerSentEvents
{
    /// <summary>Starts a response as an event stream (call before its first event): no caching, no proxy buffering.</summary>
    public static void Start(HttpResponse response)
    {
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
    }

    /// <summary>A complete JSON answer, with its length.</summary>
    public static Task WriteJsonAsync(HttpResponse response, ReadOnlyMemory<byte> body, CancellationToken ct)
    {
        response.ContentType = "application/json";
        response.ContentLength = body.Length;
        return response.Body.WriteAsync(body, ct).AsTask();
    }

    /// <summary>One unnamed event of one line (JSON holds no raw newline).</summary>
    public static void Write(IBufferWriter<byte> output, ReadOnlySpan<byte> data)
    {
        output.Write("data: "u8);
        output.Write(data);
        output.Write("\n\n"u8);
    }

}
