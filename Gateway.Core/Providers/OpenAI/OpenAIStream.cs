using System.Text.Json;

namespace Gateway.Core.Providers.OpenAI;

/// <summary>
/// An OpenAI-format SSE stream: each chunk's JSON is handed on unchanged, noting usage, the served
/// model and the text for metering. Ends at <c>data: [DONE]</c>.
/// </summary>
internal sealed class OpenAIStream(string provider, HttpResponseMessage response, CancellationTokenSource deadline, CancellationToken clientAborted)
    : SseUpstreamStream(provider, response, deadline, clientAborted)
{
    protected override IReadOnlyList<StreamChunk> OnEvent(string eventType, byte[] data)
    {
        if (data.AsSpan().SequenceEqual("[DONE]"u8))
        {
            Done = true;
            return [];
        }
        return [Inspect(data)];
    }

    protected override IReadOnlyList<StreamChunk> OnEnd() => throw Broken("the stream ended without [DONE]");

    private StreamChunk Inspect(byte[] data)
    {
        try
        {
            using var doc = JsonDocument.Parse(data);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw Broken("it sent a chunk that is not a JSON object");
            if (root.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object)
                throw Broken("it sent an error event");
            if (ServedModel is null && root.TryGetProperty("model", out var model) && model.ValueKind == JsonValueKind.String)
                ServedModel = model.GetString();
            if (root.TryGetProperty("usage", out var usage) && TokenUsage.FromOpenAI(usage) is { } u)
                Usage = u;

            var hasContent = false;
            var hasToolCall = false;
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
                        hasToolCall = true;
                    }
                }
            }
            return new StreamChunk(data, IsUsageOnly: !hasChoices && Usage is not null, hasContent, hasToolCall);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            throw Broken("it sent a chunk that is not JSON");
        }
    }
}
