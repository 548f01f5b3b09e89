using System.Buffers;
using System.Text.Json;
using Gateway.Api.Errors;
using Gateway.Core.Pipeline;
using Gateway.Core.Wire;

namespace Gateway.Api.Endpoints;

/// <summary>
/// Writes a <see cref="PipelineResult"/> in OpenAI's wire format: an error in OpenAI's shape with its status, a JSON answer, or
/// server-sent events (chunks flushed as they come, those that came together in one write, a broken stream's error as one more event, then <c>[DONE]</c>).
/// </summary>
internal static class OpenAIResponses
{
    public static async Task WriteAsync(HttpContext http, PipelineResult result, CancellationToken ct)
    {
        var response = http.Response;
        GatewayHeaders.Write(response, result.Facts);
        if (result.Error is { } error)
        {
            await OpenAIResults.WriteAsync(http, error);
            return;
        }
        if (result.Stream is not { } stream)
        {
            await ServerSentEvents.WriteJsonAsync(response, result.Body, ct);
            return;
        }

        var output = response.BodyWriter;
        var started = false;
        await using var items = stream.GetAsyncEnumerator(ct);
        while (await ServerSentEvents.NextAsync(items, output, started, ct))
        {
            var item = items.Current;
            if (item.Error is { } broken)
            {
                // Nothing reached the client yet: it still gets a real status code.
                if (!started)
                {
                    await OpenAIResults.WriteAsync(http, broken);
                    return;
                }
                ServerSentEvents.Write(output, JsonSerializer.SerializeToUtf8Bytes(broken.ToBody(), GatewayJsonContext.Wire.OpenAIErrorBody));
                break;
            }
            if (item.Chunk.IsEmpty) continue; // another protocol's own events (a passed-through stream): not for this door
            if (!started)
            {
                ServerSentEvents.Start(response);
                started = true;
            }
            ServerSentEvents.Write(output, item.Chunk.Span);
        }
        if (!started) ServerSentEvents.Start(response);
        output.Write("data: [DONE]\n\n"u8);
        await output.FlushAsync(ct);
    }
}
