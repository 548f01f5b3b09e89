using System.Text.Json;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers.Gemini;

/// <summary>
/// Gemini's <c>streamGenerateContent?alt=sse</c>: every event is a whole GenerateContentResponse
/// holding the next piece of text (or a complete function call); <c>usageMetadata</c> is cumulative,
/// so the last one counts; there is no [DONE], the stream just closes after the chunk carrying
/// <c>finishReason</c>. A close without one is a broken stream.
/// </summary>
internal sealed class GeminiStream(UpstreamCall call, ChunkWriter chunks, HttpResponseMessage response, CancellationTokenSource deadline,
    CancellationToken clientAborted) : SseUpstreamStream(call.Route.Provider.Name, response, deadline, clientAborted)
{
    private bool _started;
    private string? _finishReason;
    private bool _blocked;
    private int _toolCalls;
    private ChatUsage? _wireUsage;

    protected override IEnumerable<StreamChunk> OnEvent(string eventType, byte[] data)
    {
        var output = new List<StreamChunk>();
        try
        {
            using var doc = JsonDocument.Parse(data);
            var root = doc.RootElement;
            if (root.TryGetProperty("error", out _)) throw Broken("it sent an error event");
            if (!_started)
            {
                _started = true;
                output.Add(chunks.Role());
            }
            if (OpenAIRequestView.Str(root, "modelVersion") is { } model) ServedModel = model;
            if (root.TryGetProperty("usageMetadata", out var metadata) && metadata.ValueKind == JsonValueKind.Object)
                (Usage, _wireUsage) = GeminiResponseMapper.Usage(metadata);
            if (root.TryGetProperty("promptFeedback", out var feedback) && OpenAIRequestView.Str(feedback, "blockReason") is not null)
                _blocked = true;
            if (root.TryGetProperty("candidates", out var candidates) && candidates.ValueKind == JsonValueKind.Array)
            {
                foreach (var candidate in candidates.EnumerateArray())
                {
                    if (candidate.TryGetProperty("index", out var index) && index.TryGetInt32(out var i) && i != 0) continue;
                    var (text, calls) = GeminiResponseMapper.Parts(candidate);
                    if (text.Length > 0)
                    {
                        Text.Append(text);
                        output.Add(chunks.Text(text));
                    }
                    foreach (var (name, arguments, signature) in calls)
                    {
                        Text.Append(arguments);
                        var id = GeminiToolCallIds.Encode(call.RequestId, _toolCalls, signature);
                        output.Add(chunks.ToolCallStart(_toolCalls++, id, name, arguments));
                    }
                    _finishReason = OpenAIRequestView.Str(candidate, "finishReason") ?? _finishReason;
                }
            }
        }
        catch (JsonException)
        {
            throw Broken("it sent an event that is not JSON");
        }
        return output;
    }

    protected override IEnumerable<StreamChunk> OnEnd()
    {
        if (_finishReason is null && !_blocked) throw Broken("the stream closed before Gemini said why it finished");
        var finish = _blocked && _finishReason is null ? "content_filter" : GeminiResponseMapper.FinishReason(_finishReason, _toolCalls > 0)
            ?? throw Broken($"the model produced an unusable function call ({_finishReason})");
        var output = new List<StreamChunk>();
        if (!_started) output.Add(chunks.Role());
        output.Add(chunks.Finish(finish));
        if (_wireUsage is not null) output.Add(chunks.Usage(_wireUsage));
        Done = true;
        return output;
    }
}
