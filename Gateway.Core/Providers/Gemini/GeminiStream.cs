using System.Text.Json;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers.Gemini;

/// <summary>
/// Gemini's <c>streamGenerateContent?alt=sse</c>: every event is a whole GenerateContentResponse
/// holding the next piece of text (or a complete function call); <c>usageMetadata</c> is cumulative,
/// so the last one counts (and only counts once the stream finished: middle chunks carry the prompt
/// only); there is no [DONE], the stream just closes after the chunk carrying <c>finishReason</c>.
/// A close without one is a broken stream. Function calls are held until the next event, because
/// Gemini 3 may send their thought signature in a later empty-text part.
/// </summary>
internal sealed class GeminiStream(UpstreamCall call, ChunkWriter chunks, HttpResponseMessage response, CancellationTokenSource deadline,
    CancellationToken clientAborted) : SseUpstreamStream(call.Route.Provider.Name, response, deadline, clientAborted)
{
    private readonly List<(string Name, string Arguments, string? Signature)> _pendingCalls = [];
    private bool _started;
    private string? _finishReason;
    private bool _blocked;
    private int _toolCalls;
    private (TokenUsage Usage, ChatUsage Wire)? _usage;

    protected override IReadOnlyList<StreamChunk> OnEvent(string eventType, ReadOnlyMemory<byte> data)
    {
        var output = new List<StreamChunk>();
        try
        {
            using var doc = JsonDocument.Parse(data);
            var root = doc.RootElement;
            // An error may come as {"error":…} or wrapped in an array (see the Gemini notes on stream errors).
            var error = root.ValueKind == JsonValueKind.Array && root.GetArrayLength() > 0 ? root[0] : root;
            if (error.ValueKind == JsonValueKind.Object && error.TryGetProperty("error", out var e)) throw Failed(e);
            if (root.ValueKind != JsonValueKind.Object) throw Broken("it sent an event that is not a GenerateContentResponse");
            if (!_started)
            {
                _started = true;
                output.Add(chunks.Role());
            }
            if (OpenAIRequestView.Str(root, "modelVersion") is { } model) ServedModel = model;
            if (root.TryGetProperty("usageMetadata", out var metadata) && metadata.ValueKind == JsonValueKind.Object)
                _usage = GeminiResponseMapper.Usage(metadata);
            if (root.TryGetProperty("promptFeedback", out var feedback) && OpenAIRequestView.Str(feedback, "blockReason") is not null)
                _blocked = true;
            if (root.TryGetProperty("candidates", out var candidates) && candidates.ValueKind == JsonValueKind.Array)
            {
                foreach (var candidate in candidates.EnumerateArray())
                {
                    if (candidate.TryGetProperty("index", out var index) && index.TryGetInt32(out var i) && i != 0) continue;
                    var (text, calls, lateSignature) = GeminiResponseMapper.StreamParts(candidate);
                    if (lateSignature is not null && _pendingCalls.Count > 0 && _pendingCalls[0].Signature is null)
                        _pendingCalls[0] = _pendingCalls[0] with { Signature = lateSignature };
                    FlushCalls(output);
                    if (text.Length > 0)
                    {
                        Text.Append(text);
                        output.Add(chunks.Text(text));
                    }
                    _pendingCalls.AddRange(calls);
                    _finishReason = OpenAIRequestView.Str(candidate, "finishReason") ?? _finishReason;
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or KeyNotFoundException or FormatException)
        {
            throw Broken("it sent an event that is not a GenerateContentResponse");
        }
        return output;
    }

    private void FlushCalls(List<StreamChunk> output)
    {
        foreach (var (name, arguments, signature) in _pendingCalls)
        {
            Text.Append(arguments);
            var id = GeminiToolCallIds.Encode(call.RequestId, _toolCalls, signature);
            output.Add(chunks.ToolCallStart(_toolCalls++, id, name, arguments));
        }
        _pendingCalls.Clear();
    }

    private UpstreamStreamException Failed(JsonElement error)
    {
        var code = error.TryGetProperty("code", out var c) && c.TryGetInt32(out var n) ? n : 0;
        var kind = code switch
        {
            429 => UpstreamFailureKind.RateLimited,
            503 => UpstreamFailureKind.Overloaded,
            >= 500 => UpstreamFailureKind.ServerError,
            _ => UpstreamFailureKind.Protocol,
        };
        return new UpstreamStreamException(new UpstreamFailure(kind, Provider, $"it sent an error event ({OpenAIRequestView.Str(error, "status") ?? code.ToString(System.Globalization.CultureInfo.InvariantCulture)})"));
    }

    protected override IReadOnlyList<StreamChunk> OnEnd()
    {
        if (_finishReason is null && !_blocked) throw Broken("the stream closed before Gemini said why it finished");
        var output = new List<StreamChunk>();
        if (!_started) output.Add(chunks.Role());
        FlushCalls(output);
        // An unusable call ended the stream as it finished, so its usage is whole: Gemini billed it (as unstreamed).
        var finish = _blocked && _finishReason is null ? "content_filter" : GeminiResponseMapper.FinishReason(_finishReason, _toolCalls > 0)
            ?? throw new UpstreamStreamException(new UpstreamFailure(UpstreamFailureKind.Protocol, Provider,
                $"the model produced an unusable function call ({_finishReason})", Usage: _usage?.Usage));
        output.Add(chunks.Finish(finish));
        if (_usage is { } usage)
        {
            Usage = usage.Usage;
            output.Add(chunks.Usage(usage.Wire));
        }
        Done = true;
        return output;
    }
}
