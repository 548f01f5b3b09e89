using System.Text.Json;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers.Anthropic;

/// <summary>
/// Anthropic's event stream → OpenAI chunks: <c>message_start</c> (role, input usage),
/// <c>content_block_start</c> (a tool call's id and name), <c>content_block_delta</c> (<c>text_delta</c>,
/// <c>input_json_delta</c> argument pieces), <c>message_delta</c> (stop reason, cumulative usage),
/// <c>message_stop</c> (finish + usage chunk), <c>ping</c> (ignored), <c>error</c> (a failed stream).
/// Tool calls are numbered as OpenAI does (0, 1… over tool blocks, not Anthropic's block index).
/// </summary>
/// <remarks>
/// Passed through (<paramref name="native"/>: the request came through the Anthropic door), every upstream event also rides, as
/// server-sent event text, on the chunk it completes (<see cref="StreamChunk.Native"/>), so that door relays the stream as Anthropic
/// wrote it; events with no chunk of their own (pings, block stops, thinking) wait for the next chunk.
/// </remarks>
internal sealed class AnthropicStream(string provider, ChunkWriter chunks, string? jsonTool, HttpResponseMessage response,
    CancellationTokenSource deadline, CancellationToken clientAborted, bool native = false) : SseUpstreamStream(provider, response, deadline, clientAborted)
{
    protected override IReadOnlyList<StreamChunk> OnEvent(string eventType, ReadOnlyMemory<byte> data)
    {
        var translated = Translate(eventType, data);
        return native ? Relay(eventType, data, translated) : translated; // message_stop, the last, waits for the metering
    }

    private readonly Dictionary<int, int> _toolIndexByBlock = [];
    private readonly HashSet<int> _jsonBlocks = [];
    private string? _stopReason;
    private AnthropicCounts _counts;

    private IReadOnlyList<StreamChunk> Translate(string eventType, ReadOnlyMemory<byte> data)
    {
        try
        {
            using var doc = JsonDocument.Parse(data);
            var root = doc.RootElement;
            switch (eventType)
            {
                case "message_start":
                    var message = root.GetProperty("message");
                    ServedModel = OpenAIRequestView.Str(message, "model");
                    if (message.TryGetProperty("usage", out var startUsage)) _counts = AnthropicResponseMapper.Counts(startUsage);
                    return [chunks.Role()];
                case "content_block_start":
                    var index = root.GetProperty("index").GetInt32();
                    var block = root.GetProperty("content_block");
                    if (OpenAIRequestView.Str(block, "type") != "tool_use")
                        return OpenAIRequestView.Str(block, "text") is { Length: > 0 } initial ? [TextChunk(initial)] : [];
                    var name = OpenAIRequestView.Str(block, "name")!;
                    if (name == jsonTool)
                    {
                        _jsonBlocks.Add(index);
                        return [];
                    }
                    var toolIndex = _toolIndexByBlock.Count;
                    _toolIndexByBlock[index] = toolIndex;
                    return [chunks.ToolCallStart(toolIndex, OpenAIRequestView.Str(block, "id")!, name)];
                case "content_block_delta":
                    var at = root.GetProperty("index").GetInt32();
                    var delta = root.GetProperty("delta");
                    switch (OpenAIRequestView.Str(delta, "type"))
                    {
                        case "text_delta":
                            return [TextChunk(OpenAIRequestView.Str(delta, "text") ?? "")];
                        case "input_json_delta" when OpenAIRequestView.Str(delta, "partial_json") is { Length: > 0 } partial:
                            if (_jsonBlocks.Contains(at)) return [TextChunk(partial)];
                            Text.Append(partial);
                            return _toolIndexByBlock.TryGetValue(at, out var t) ? [chunks.ToolCallArguments(t, partial)] : [];
                        default:
                            return []; // thinking/signature/citation deltas have no OpenAI equivalent here
                    }
                case "message_delta":
                    if (root.TryGetProperty("delta", out var messageDelta) && OpenAIRequestView.Str(messageDelta, "stop_reason") is { } stop)
                        _stopReason = stop;
                    if (root.TryGetProperty("usage", out var usage))
                    {
                        // Cumulative: later values replace earlier ones; absent fields keep what message_start said. The split of
                        // cache writes by lifetime (cache_creation) comes with message_start; message_delta's usage has none.
                        var c = AnthropicResponseMapper.Counts(usage);
                        _counts = new AnthropicCounts(usage.TryGetProperty("input_tokens", out _) ? c.Input : _counts.Input,
                            usage.TryGetProperty("cache_creation_input_tokens", out _) || usage.TryGetProperty("cache_creation", out _)
                                ? c.CacheCreation : _counts.CacheCreation,
                            usage.TryGetProperty("cache_creation", out _) ? c.CacheCreation1h : _counts.CacheCreation1h,
                            usage.TryGetProperty("cache_read_input_tokens", out _) ? c.CacheRead : _counts.CacheRead,
                            c.Output);
                    }
                    return [];
                case "message_stop":
                    Done = true;
                    var (tokens, wire) = AnthropicResponseMapper.Usage(_counts);
                    Usage = tokens;
                    var finish = _jsonBlocks.Count > 0 && _stopReason == "tool_use" ? "stop" : AnthropicResponseMapper.FinishReason(_stopReason);
                    // (a JSON-mode answer cut by max_tokens keeps "length")
                    return [chunks.Finish(finish), chunks.Usage(wire)];
                case "error":
                    var error = root.TryGetProperty("error", out var e) ? e : root;
                    var kind = OpenAIRequestView.Str(error, "type") switch
                    {
                        "overloaded_error" => UpstreamFailureKind.Overloaded,
                        "rate_limit_error" => UpstreamFailureKind.RateLimited,
                        _ => UpstreamFailureKind.Protocol,
                    };
                    throw new UpstreamStreamException(new UpstreamFailure(kind, Provider,
                        $"it sent an error event ({OpenAIRequestView.Str(error, "type") ?? "unknown"})"));
                default:
                    return []; // ping, content_block_stop and event types added later
            }
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw Broken($"it sent a malformed {eventType} event");
        }
    }

    private StreamChunk TextChunk(string text)
    {
        Text.Append(text);
        return chunks.Text(text);
    }

    protected override IReadOnlyList<StreamChunk> OnEnd() => throw Broken("the stream closed before message_stop");
}
