using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Api.Errors;
using Gateway.Core.Errors;
using Gateway.Core.Pipeline;
using Gateway.Core.Wire;

namespace Gateway.Api.Endpoints.Anthropic;

/// <summary>
/// Writes a <see cref="PipelineResult"/> in Anthropic's Messages format: an error in Anthropic's shape, a <c>message</c> object, or
/// Anthropic's named events (<c>message_start</c>, <c>content_block_start</c>/<c>delta</c>/<c>stop</c> with <c>text_delta</c> and
/// <c>input_json_delta</c>, <c>message_delta</c> with the stop reason and usage, <c>message_stop</c>; <c>error</c> when the stream
/// breaks). Usage: <c>input_tokens</c> is the prompt without cache reads (Anthropic counts those apart, as
/// <c>cache_read_input_tokens</c>); the prompt estimated by the gateway in <c>message_start</c>, the upstream's count in
/// <c>message_delta</c>. An Anthropic upstream's answer to a passed-through request goes back as it wrote it: its message, or its
/// events relayed one for one; if another candidate continues a broken stream, its chunks are translated from there on.
/// </summary>
internal static class MessagesResponses
{
    public static async Task WriteAsync(HttpContext http, PipelineResult result, int promptEstimate, CancellationToken ct)
    {
        var response = http.Response;
        GatewayHeaders.Write(response, result.Facts);
        if (result.Error is { } error)
        {
            await AnthropicResults.WriteAsync(http, error);
            return;
        }
        if (result.Stream is not { } stream)
        {
            // An Anthropic upstream's Message goes back as it wrote it; any other answer is translated.
            var body = !result.Native.IsEmpty ? result.Native
                : JsonSerializer.SerializeToUtf8Bytes(Message(JsonNode.Parse(result.Body.Span)!.AsObject()), GatewayJsonContext.Wire.JsonObject);
            await ServerSentEvents.WriteJsonAsync(response, body, ct);
            return;
        }

        var output = response.BodyWriter;
        var events = new EventWriter(output, promptEstimate);
        await using var items = stream.GetAsyncEnumerator(ct);
        while (await ServerSentEvents.NextAsync(items, output, events.Started, ct))
        {
            var item = items.Current;
            if (item.Error is { } broken)
            {
                if (!events.Started)
                {
                    await AnthropicResults.WriteAsync(http, broken);
                    return;
                }
                events.Error(broken);
                await output.FlushAsync(ct);
                return;
            }
            if (!events.Started) ServerSentEvents.Start(response);
            if (!item.Native.IsEmpty) events.Native(item.Native.Span);
            else events.Chunk(JsonNode.Parse(item.Chunk.Span)!.AsObject());
        }
        if (!events.Started) ServerSentEvents.Start(response);
        events.End();
        await output.FlushAsync(ct);
    }

    /// <summary>A <c>chat.completion</c> as Anthropic's <c>message</c>.</summary>
    internal static JsonObject Message(JsonObject completion)
    {
        var choice = completion["choices"] is JsonArray { Count: > 0 } choices ? choices[0]!.AsObject() : new JsonObject();
        var message = choice["message"] as JsonObject ?? new JsonObject();
        var content = new JsonArray();
        if (Str(message, "content") is { Length: > 0 } text) content.Add((JsonNode)new JsonObject { ["type"] = "text", ["text"] = text });
        if (message["tool_calls"] is JsonArray calls)
        {
            foreach (var call in calls.OfType<JsonObject>())
            {
                var function = call["function"] as JsonObject ?? new JsonObject();
                content.Add((JsonNode)new JsonObject
                {
                    ["type"] = "tool_use", ["id"] = Str(call, "id"), ["name"] = Str(function, "name"), ["input"] = Arguments(Str(function, "arguments")),
                });
            }
        }
        return new JsonObject
        {
            ["id"] = MessageId(Str(completion, "id")),
            ["type"] = "message",
            ["role"] = "assistant",
            ["model"] = Str(completion, "model"),
            ["content"] = content,
            ["stop_reason"] = StopReason(Str(choice, "finish_reason")),
            ["stop_sequence"] = null,
            ["usage"] = Usage(completion["usage"] as JsonObject),
        };
    }

    internal static string StopReason(string? finishReason) => finishReason switch
    {
        "length" => "max_tokens",
        "tool_calls" or "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    };

    private static JsonObject Usage(JsonObject? usage)
    {
        var prompt = Int(usage, "prompt_tokens");
        var cached = usage?["prompt_tokens_details"] is JsonObject details ? Int(details, "cached_tokens") : 0;
        return new JsonObject
        {
            ["input_tokens"] = Math.Max(0, prompt - cached),
            ["output_tokens"] = Int(usage, "completion_tokens"),
            ["cache_creation_input_tokens"] = 0,
            ["cache_read_input_tokens"] = cached,
        };
    }

    // A tool call's arguments as the input object; arguments that are not a JSON object are kept as a string under "arguments".
    private static JsonNode Arguments(string? arguments)
    {
        if (string.IsNullOrWhiteSpace(arguments)) return new JsonObject();
        try
        {
            return JsonNode.Parse(arguments) as JsonObject ?? new JsonObject { ["arguments"] = arguments };
        }
        catch (JsonException)
        {
            return new JsonObject { ["arguments"] = arguments };
        }
    }

    private static string MessageId(string? id) => id is null ? "msg_" + Guid.NewGuid().ToString("N") : id.StartsWith("msg_", StringComparison.Ordinal) ? id : "msg_" + id;

    private static string? Str(JsonObject node, string name) =>
        node[name] is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;

    private static int Int(JsonObject? node, string name) =>
        node?[name] is JsonValue value && value.TryGetValue<int>(out var number) ? number : 0;

    /// <summary>Canonical chunks → Anthropic's events, one content block open at a time.</summary>
    private sealed class EventWriter(IBufferWriter<byte> output, int promptEstimate)
    {
        private int _blocks;          // blocks started so far (the next block's index)
        private string? _open;        // "text" or "tool_use" while a block is open
        private readonly Dictionary<int, int> _toolBlocks = []; // OpenAI tool call index → block index
        private string? _finish;
        private JsonObject? _usage;

        public bool Started { get; private set; }

        private bool _ended; // the upstream's own message_stop was relayed

        /// <summary>An Anthropic upstream's events, relayed as they came; the block count follows them, in case a translated
        /// continuation has to go on after them.</summary>
        public void Native(ReadOnlySpan<byte> events)
        {
            Started = true;
            output.Write(events);
            _blocks += Count(events, "event: content_block_start\n"u8);
            var stops = Count(events, "event: content_block_stop\n"u8);
            if (stops > 0 || Count(events, "event: content_block_start\n"u8) > 0)
                _open = events.LastIndexOf("event: content_block_start\n"u8) > events.LastIndexOf("event: content_block_stop\n"u8) ? "native" : null;
            _ended |= events.IndexOf("event: message_stop\n"u8) >= 0;

            static int Count(ReadOnlySpan<byte> text, ReadOnlySpan<byte> what)
            {
                var count = 0;
                for (var at = text.IndexOf(what); at >= 0; at = text.IndexOf(what))
                {
                    count++;
                    text = text[(at + what.Length)..];
                }
                return count;
            }
        }

        public void Chunk(JsonObject chunk)
        {
            if (!Started) Begin(chunk);
            if (chunk["usage"] is JsonObject usage) _usage = usage;
            if (chunk["choices"] is not JsonArray { Count: > 0 } choices || choices[0] is not JsonObject choice) return;
            if (choice["delta"] is JsonObject delta)
            {
                if (Str(delta, "content") is { Length: > 0 } text)
                {
                    if (_open != "text") StartBlock("text", new JsonObject { ["type"] = "text", ["text"] = "" });
                    Event("content_block_delta", new JsonObject
                    {
                        ["type"] = "content_block_delta", ["index"] = _blocks - 1, ["delta"] = new JsonObject { ["type"] = "text_delta", ["text"] = text },
                    });
                }
                if (delta["tool_calls"] is JsonArray calls)
                {
                    foreach (var call in calls.OfType<JsonObject>())
                    {
                        var index = Int(call, "index");
                        var function = call["function"] as JsonObject;
                        if (!_toolBlocks.TryGetValue(index, out var block))
                        {
                            StartBlock("tool_use", new JsonObject
                            {
                                ["type"] = "tool_use", ["id"] = Str(call, "id"), ["name"] = function is null ? null : Str(function, "name"), ["input"] = new JsonObject(),
                            });
                            _toolBlocks[index] = block = _blocks - 1;
                        }
                        if (function is not null && Str(function, "arguments") is { Length: > 0 } arguments)
                            Event("content_block_delta", new JsonObject
                            {
                                ["type"] = "content_block_delta", ["index"] = block,
                                ["delta"] = new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = arguments },
                            });
                    }
                }
            }
            if (Str(choice, "finish_reason") is { } finish) _finish = finish;
        }

        public void End()
        {
            if (_ended) return;
            if (!Started) Begin(new JsonObject());
            CloseBlock();
            var usage = Usage(_usage);
            Event("message_delta", new JsonObject
            {
                ["type"] = "message_delta",
                ["delta"] = new JsonObject { ["stop_reason"] = StopReason(_finish), ["stop_sequence"] = null },
                ["usage"] = usage,
            });
            Event("message_stop", new JsonObject { ["type"] = "message_stop" });
        }

        public void Error(GatewayError error) => Event("error", AnthropicResults.Body(error));

        private void Begin(JsonObject first)
        {
            Started = true;
            Event("message_start", new JsonObject
            {
                ["type"] = "message_start",
                ["message"] = new JsonObject
                {
                    ["id"] = MessageId(Str(first, "id")), ["type"] = "message", ["role"] = "assistant", ["model"] = Str(first, "model"),
                    ["content"] = new JsonArray(), ["stop_reason"] = null, ["stop_sequence"] = null,
                    // The upstream's count comes with message_delta; until then the gateway's estimate of the prompt, never 0.
                    ["usage"] = new JsonObject { ["input_tokens"] = promptEstimate, ["output_tokens"] = 0 },
                },
            });
            Event("ping", new JsonObject { ["type"] = "ping" });
        }

        private void StartBlock(string kind, JsonObject block)
        {
            CloseBlock();
            Event("content_block_start", new JsonObject { ["type"] = "content_block_start", ["index"] = _blocks, ["content_block"] = block });
            _open = kind;
            _blocks++;
        }

        private void CloseBlock()
        {
            if (_open is null) return;
            Event("content_block_stop", new JsonObject { ["type"] = "content_block_stop", ["index"] = _blocks - 1 });
            _open = null;
        }

        private void Event(string name, JsonObject data)
        {
            ServerSentEvents.Write(output, JsonSerializer.SerializeToUtf8Bytes(data, GatewayJsonContext.Wire.JsonObject), name);
        }
    }
}
