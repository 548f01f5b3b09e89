using System.Text.Json;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers.OpenAI;

/// <summary>
/// OpenAI's Responses event stream (https://platform.openai.com/docs/api-reference/responses-streaming) → OpenAI chunks for the
/// gateway's own use (metering, first-token deadline, the cache): <c>response.created</c> (model), <c>response.output_text.delta</c>
/// and <c>response.refusal.delta</c> (text), a <c>function_call</c> item's <c>response.output_item.added</c> and
/// <c>response.function_call_arguments.delta</c>s (tool calls, numbered 0, 1… as OpenAI's chat API does),
/// <c>response.completed</c>/<c>response.incomplete</c> (finish and usage), <c>response.failed</c> and <c>error</c> (a failed stream).
/// Every event also rides, as server-sent event text, on the chunk it completes (<see cref="StreamChunk.Native"/>), so the Responses
/// door relays the stream as the upstream wrote it. Other output items beginning (reasoning, a built-in tool call), reasoning deltas
/// and built-in tools' progress become an empty chunk that counts as the answer under way (<see cref="ChunkWriter.Progress"/>): a
/// model that reasons or searches before it writes passes the first-token deadline, and the client sees those steps as they come.
/// Events with no chunk of their own (item and part boundaries) wait for the next chunk, and the final event waits for the request
/// to be metered (<see cref="UpstreamStream.NativeTail"/>).
/// </summary>
internal sealed class OpenAIResponsesStream(string provider, ChunkWriter chunks, HttpResponseMessage response, CancellationTokenSource deadline,
    CancellationToken clientAborted) : SseUpstreamStream(provider, response, deadline, clientAborted)
{
    private readonly Dictionary<string, int> _toolIndexByItem = new(StringComparer.Ordinal);

    protected override IReadOnlyList<StreamChunk> OnEvent(string eventType, ReadOnlyMemory<byte> data) => Relay(eventType, data, Translate(data));

    // The event's own "type" names it (the SSE event name repeats it, and some servers leave the name out).
    private IReadOnlyList<StreamChunk> Translate(ReadOnlyMemory<byte> data)
    {
        string? type = null;
        try
        {
            using var doc = JsonDocument.Parse(data, new JsonDocumentOptions { MaxDepth = GatewayJsonContext.MaxWireDepth }); // events nest the request's schemas deeper
            var root = doc.RootElement;
            type = OpenAIRequestView.Str(root, "type");
            switch (type)
            {
                case "response.created":
                    ServedModel = root.TryGetProperty("response", out var created) ? OpenAIRequestView.Str(created, "model") : null;
                    return [chunks.Role()];
                case "response.output_text.delta" or "response.refusal.delta":
                    var text = OpenAIRequestView.Str(root, "delta") ?? "";
                    Text.Append(text);
                    return [chunks.Text(text)];
                case "response.output_item.added":
                    var item = root.GetProperty("item");
                    if (OpenAIRequestView.Str(item, "type") != "function_call") return [chunks.Progress()]; // reasoning, a built-in tool call…
                    var index = _toolIndexByItem.Count;
                    _toolIndexByItem[OpenAIRequestView.Str(item, "id") ?? index.ToString(System.Globalization.CultureInfo.InvariantCulture)] = index;
                    return [chunks.ToolCallStart(index, OpenAIRequestView.Str(item, "call_id") ?? "", OpenAIRequestView.Str(item, "name") ?? "")];
                case "response.function_call_arguments.delta":
                    var arguments = OpenAIRequestView.Str(root, "delta") ?? "";
                    Text.Append(arguments);
                    return _toolIndexByItem.TryGetValue(OpenAIRequestView.Str(root, "item_id") ?? "", out var at) ? [chunks.ToolCallArguments(at, arguments)] : [];
                case "response.completed" or "response.incomplete":
                    Done = true;
                    var final = root.GetProperty("response");
                    ServedModel = OpenAIRequestView.Str(final, "model") ?? ServedModel;
                    StreamChunk finish = chunks.Finish(OpenAIResponsesApi.FinishReason(final, _toolIndexByItem.Count > 0));
                    if (!final.TryGetProperty("usage", out var usage) || usage.ValueKind != JsonValueKind.Object) return [finish];
                    var (tokens, wire) = OpenAIResponsesApi.Usage(usage);
                    Usage = tokens;
                    return [finish, chunks.Usage(wire)];
                case "response.failed" or "error":
                    var error = root.TryGetProperty("response", out var failed) && failed.TryGetProperty("error", out var e) ? e : root;
                    var code = OpenAIRequestView.Str(error, "code");
                    var kind = code switch
                    {
                        "rate_limit_exceeded" => UpstreamFailureKind.RateLimited,
                        "server_is_overloaded" or "slow_down" => UpstreamFailureKind.Overloaded,
                        "server_error" => UpstreamFailureKind.ServerError,
                        _ => UpstreamFailureKind.Protocol,
                    };
                    throw new UpstreamStreamException(new UpstreamFailure(kind, Provider, $"it sent {type} ({code ?? "no code"})"));
                case "response.in_progress" or "response.queued":
                    return []; // the response's own state, said at once: not the model at work
                case not null when type.StartsWith("response.reasoning", StringComparison.Ordinal) || type.EndsWith(".in_progress", StringComparison.Ordinal)
                    || type.EndsWith(".searching", StringComparison.Ordinal) || type.EndsWith(".interpreting", StringComparison.Ordinal)
                    || type.EndsWith(".generating", StringComparison.Ordinal):
                    return [chunks.Progress()]; // the model is at work: relayed as it comes, and it counts as the answer begun
                default:
                    return []; // item and part boundaries, event types added later
            }
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw Broken($"it sent a malformed {type ?? "Responses"} event");
        }
    }

    protected override IReadOnlyList<StreamChunk> OnEnd() => throw Broken("the stream closed before response.completed");
}
