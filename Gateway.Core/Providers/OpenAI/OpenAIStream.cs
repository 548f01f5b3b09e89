using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;

namespace Gateway.Core.Providers.OpenAI;

/// <summary>
/// Reads an OpenAI-format SSE stream (System.Net.ServerSentEvents) and hands each chunk's JSON on
/// unchanged, noting usage, the served model and the text for metering.
/// </summary>
internal sealed class OpenAIStream(string provider, HttpResponseMessage response, CancellationTokenSource deadline, CancellationToken clientAborted)
    : UpstreamStream
{
    public override async IAsyncEnumerable<StreamChunk> ReadChunksAsync([EnumeratorCancellation] CancellationToken ct)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, deadline.Token);
        Stream body;
        try
        {
            body = await response.Content.ReadAsStreamAsync(linked.Token);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            throw Broken("the stream could not be read");
        }

        var events = SseParser.Create(body, static (_, data) => data.ToArray()).EnumerateAsync(linked.Token);
        await using var e = events.GetAsyncEnumerator(linked.Token);
        while (true)
        {
            bool more;
            try
            {
                more = await e.MoveNextAsync();
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException)
            {
                throw Broken("the stream broke before it finished");
            }
            catch (OperationCanceledException) when (!clientAborted.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                throw new UpstreamStreamException(new UpstreamFailure(UpstreamFailureKind.Timeout, provider, "timed out"));
            }
            if (!more) throw Broken("the stream ended without [DONE]");

            var data = e.Current.Data;
            if (data.AsSpan().SequenceEqual("[DONE]"u8)) yield break;
            yield return Inspect(data);
        }
    }

    private StreamChunk Inspect(byte[] data)
    {
        try
        {
            using var doc = JsonDocument.Parse(data);
            var root = doc.RootElement;
            if (root.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object)
                throw Broken("it sent an error event");
            if (ServedModel is null && root.TryGetProperty("model", out var model) && model.ValueKind == JsonValueKind.String)
                ServedModel = model.GetString();
            if (root.TryGetProperty("usage", out var usage) && TokenUsage.FromOpenAI(usage) is { } u)
                Usage = u;

            var hasContent = false;
            var hasChoices = false;
            if (root.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array)
            {
                foreach (var choice in choices.EnumerateArray())
                {
                    hasChoices = true;
                    if (!choice.TryGetProperty("delta", out var delta) || delta.ValueKind != JsonValueKind.Object) continue;
                    if (delta.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
                    {
                        var text = content.GetString();
                        if (!string.IsNullOrEmpty(text))
                        {
                            Text.Append(text);
                            hasContent = true;
                        }
                    }
                    if (delta.TryGetProperty("tool_calls", out var tools) && tools.ValueKind == JsonValueKind.Array)
                    {
                        Text.Append(tools.GetRawText());
                        hasContent = true;
                    }
                }
            }
            return new StreamChunk(data, IsUsageOnly: !hasChoices && Usage is not null, hasContent);
        }
        catch (JsonException)
        {
            throw Broken("it sent a chunk that is not JSON");
        }
    }

    private UpstreamStreamException Broken(string detail) =>
        new(new UpstreamFailure(UpstreamFailureKind.Protocol, provider, detail));

    public override async ValueTask DisposeAsync()
    {
        response.Dispose();
        deadline.Dispose();
        await base.DisposeAsync();
    }
}
