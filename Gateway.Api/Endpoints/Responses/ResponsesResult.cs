using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Api.Errors;
using Gateway.Core.Errors;
using Gateway.Core.Pipeline;
using Gateway.Core.Wire;

namespace Gateway.Api.Endpoints.Responses;

/// <summary>
/// Writes a <see cref="PipelineResult"/> in OpenAI's Responses format (https://platform.openai.com/docs/api-reference/responses):
/// an error in OpenAI's shape with its status, a <c>response</c> object, or the Responses event stream, each event named
/// (<c>event:</c>) and numbered (<c>sequence_number</c>): <c>response.created</c>, <c>response.in_progress</c>, per output item
/// <c>response.output_item.added</c> … <c>done</c> (a message's <c>content_part.added</c>, <c>output_text.delta</c>s,
/// <c>output_text.done</c>, <c>content_part.done</c>; a function call's <c>function_call_arguments.delta</c>s and <c>.done</c>),
/// then <c>response.completed</c> (or <c>response.incomplete</c> when the output limit cut it short) with usage. A stream that
/// breaks after it began ends with <c>error</c> and <c>response.failed</c>. Usage: <c>input_tokens</c> is the prompt with its cached
/// part (<c>input_tokens_details.cached_tokens</c>), as OpenAI counts it.
/// An answer of a Responses upstream to a passed-through request goes back as it wrote it (its response object, or its events
/// relayed one for one), with the gateway's response id (under which it is stored) and the client's <c>previous_response_id</c>.
/// </summary>
internal static class ResponsesResult
{
    /// <param name="http">The request.</param>
    /// <param name="result">The pipeline's result.</param>
    /// <param name="shape">The response object's fields that echo the request.</param>
    /// <param name="save">Stores the finished response (when <c>store</c>) before the client gets it whole, told whether the upstream
    /// wrote it (passed through); null not to store.</param>
    /// <param name="ct">The request's token.</param>
    public static async Task WriteAsync(HttpContext http, PipelineResult result, ResponseShape shape, Func<JsonObject, bool, Task>? save, CancellationToken ct)
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
            var passedThrough = !result.Native.IsEmpty;
            var answer = passedThrough ? shape.Own(JsonNode.Parse(result.Native.Span)!.AsObject()) : shape.FromCompletion(JsonNode.Parse(result.Body.Span)!.AsObject());
            if (save is not null) await save(answer, passedThrough);
            var body = JsonSerializer.SerializeToUtf8Bytes(answer, GatewayJsonContext.Wire.JsonObject);
            await ServerSentEvents.WriteJsonAsync(response, body, ct);
            return;
        }

        var output = response.BodyWriter;
        var events = new EventWriter(output, shape);
        await using var items = stream.GetAsyncEnumerator(ct);
        while (await ServerSentEvents.NextAsync(items, output, events.Started, ct))
        {
            var item = items.Current;
            if (item.Error is { } broken)
            {
                // Nothing reached the client yet: it still gets a real status code.
                if (!events.Started)
                {
                    await OpenAIResults.WriteAsync(http, broken);
                    return;
                }
                events.Failed(broken);
                await output.FlushAsync(ct);
                return;
            }
            if (!item.Native.IsEmpty)
            {
                // A Responses upstream's own events, relayed; its final response stored before the client reads it.
                if (!events.Started) ServerSentEvents.Start(response);
                foreach (var (name, data) in ServerSentEvents.Split(item.Native))
                {
                    if (events.Native(name, data) is { } final && save is not null) await save(final, true);
                }
                continue;
            }
            if (item.Chunk.IsEmpty) continue;
            if (!events.Started) ServerSentEvents.Start(response);
            events.Chunk(JsonNode.Parse(item.Chunk.Span)!.AsObject());
        }
        if (!events.Started) ServerSentEvents.Start(response);
        if (events.Relayed) return; // the upstream's own ending went out with its events
        var finished = events.Finish();
        await output.FlushAsync(ct);
        if (save is not null) await save(finished, false);
        events.Completed(finished);
        await output.FlushAsync(ct);
    }

    /// <summary>Chat usage → Responses usage.</summary>
    internal static JsonObject? Usage(JsonObject? usage)
    {
        if (usage is null) return null;
        var input = Int(usage, "prompt_tokens");
        var output = Int(usage, "completion_tokens");
        return new JsonObject
        {
            ["input_tokens"] = input,
            ["input_tokens_details"] = new JsonObject { ["cached_tokens"] = Int(usage["prompt_tokens_details"] as JsonObject, "cached_tokens") },
            ["output_tokens"] = output,
            ["output_tokens_details"] = new JsonObject { ["reasoning_tokens"] = Int(usage["completion_tokens_details"] as JsonObject, "reasoning_tokens") },
            ["total_tokens"] = usage["total_tokens"] is JsonValue total && total.TryGetValue<int>(out var sum) ? sum : input + output,
        };
    }

    internal static string? Str(JsonObject? node, string name) =>
        node?[name] is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;

    private static int Int(JsonObject? node, string name) =>
        node?[name] is JsonValue value && value.TryGetValue<int>(out var number) ? number : 0;

    /// <summary>Canonical chunks → the Responses events, with the output items they build.</summary>
    private sealed class EventWriter(IBufferWriter<byte> output, ResponseShape shape)
    {
        private readonly JsonArray _output = [];
        private readonly Dictionary<int, (JsonObject Item, int Index)> _calls = []; // chat tool call index → its output item
        private (JsonObject Item, int Index)? _message; // the message item taking text, while open
        private (JsonObject Item, int Index)? _call;    // the function call item taking arguments, while open
        private System.Text.StringBuilder _text = new();
        private readonly Dictionary<JsonObject, System.Text.StringBuilder> _arguments = [];
        private int _sequence;
        private string? _model;
        private string? _finish;
        private JsonObject? _usage;

        public bool Started { get; private set; }

        /// <summary>The upstream's own ending (<c>response.completed</c> or <c>.incomplete</c>) was relayed.</summary>
        public bool Relayed { get; private set; }

        /// <summary>
        /// One event of a Responses upstream, relayed: a lifecycle event's response carries the gateway's id, and the numbering
        /// follows the upstream's (an error of the gateway's own comes next). Returns the finished response of the last event.
        /// </summary>
        public JsonObject? Native(string name, ReadOnlyMemory<byte> data)
        {
            Started = true;
            var body = JsonNode.Parse(data.Span, documentOptions: new JsonDocumentOptions { MaxDepth = GatewayJsonContext.MaxWireDepth }) as JsonObject;
            // The event's own type names it: a server that leaves out the event: line still has its ending recognised.
            if (ResponsesResult.Str(body, "type") is { Length: > 0 } type) name = type;
            if (body?["sequence_number"] is JsonValue number && number.TryGetValue<int>(out var at)) _sequence = at + 1;
            JsonObject? finished = null;
            if (body?["response"] is JsonObject lifecycle)
            {
                body["response"] = shape.Own(lifecycle);
                if (name is "response.completed" or "response.incomplete")
                {
                    finished = (JsonObject)body["response"]!.DeepClone();
                    Relayed = true;
                }
                data = JsonSerializer.SerializeToUtf8Bytes(body, GatewayJsonContext.Wire.JsonObject);
            }
            else if (body is not null && data.Span.Contains((byte)'\n'))
            {
                data = JsonSerializer.SerializeToUtf8Bytes(body, GatewayJsonContext.Wire.JsonObject); // one line, as an event's data must be
            }
            ServerSentEvents.Write(output, data.Span, name);
            return finished;
        }

        public void Chunk(JsonObject chunk)
        {
            if (!Started) Begin(chunk);
            if (chunk["usage"] is JsonObject usage) _usage = usage;
            if (chunk["choices"] is not JsonArray { Count: > 0 } choices || choices[0] is not JsonObject choice) return;
            if (choice["delta"] is JsonObject delta)
            {
                if (Str(delta, "content") is { Length: > 0 } text) Text(text);
                if (Str(delta, "refusal") is { Length: > 0 } refusal) Text(refusal);
                if (delta["tool_calls"] is JsonArray calls)
                    foreach (var call in calls.OfType<JsonObject>()) ToolCall(call);
            }
            if (Str(choice, "finish_reason") is { } finish) _finish = finish;
        }

        /// <summary>Closes the open items; the finished response object (not yet sent: <see cref="Completed"/>).</summary>
        public JsonObject Finish()
        {
            if (!Started) Begin(new JsonObject());
            CloseMessage();
            CloseCall();
            var incomplete = ResponseShape.Incomplete(_finish);
            if (incomplete is not null)
                foreach (var item in _output.OfType<JsonObject>()) item["status"] = "incomplete";
            return shape.Build(incomplete is null ? "completed" : "incomplete", _model, (JsonArray)_output.DeepClone(), Usage(_usage), null, incomplete);
        }

        public void Completed(JsonObject response) =>
            Event(Str(response, "status") == "incomplete" ? "response.incomplete" : "response.completed", new JsonObject { ["response"] = response });

        public void Failed(GatewayError error)
        {
            Event("error", new JsonObject { ["code"] = error.Code ?? error.Type, ["message"] = error.Message, ["param"] = error.Param });
            var failed = shape.Build("failed", _model, (JsonArray)_output.DeepClone(), Usage(_usage),
                new JsonObject { ["code"] = error.Code ?? "server_error", ["message"] = error.Message }, null);
            Event("response.failed", new JsonObject { ["response"] = failed });
        }

        private void Begin(JsonObject first)
        {
            Started = true;
            _model = Str(first, "model");
            var opening = shape.Build("in_progress", _model, [], null, null, null);
            Event("response.created", new JsonObject { ["response"] = opening });
            Event("response.in_progress", new JsonObject { ["response"] = opening.DeepClone() });
        }

        private void Text(string text)
        {
            if (_message is not { } open)
            {
                CloseCall();
                var item = new JsonObject
                {
                    ["id"] = shape.ItemId("msg", _output.Count), ["type"] = "message", ["status"] = "in_progress", ["role"] = "assistant", ["content"] = new JsonArray(),
                };
                open = Add(item);
                _message = open;
                _text = new System.Text.StringBuilder();
                Event("response.content_part.added", new JsonObject
                {
                    ["item_id"] = Str(item, "id"), ["output_index"] = open.Index, ["content_index"] = 0, ["part"] = ResponseShape.TextPart(""),
                });
            }
            _text.Append(text);
            Event("response.output_text.delta", new JsonObject
            {
                ["item_id"] = Str(open.Item, "id"), ["output_index"] = open.Index, ["content_index"] = 0, ["delta"] = text, ["logprobs"] = new JsonArray(),
            });
        }

        private void ToolCall(JsonObject call)
        {
            var index = call["index"] is JsonValue at && at.TryGetValue<int>(out var i) ? i : 0;
            var function = call["function"] as JsonObject;
            if (!_calls.TryGetValue(index, out var open))
            {
                CloseMessage();
                CloseCall();
                var callId = Str(call, "id") ?? shape.ItemId("call", _output.Count);
                var item = new JsonObject
                {
                    ["id"] = shape.ItemId("fc", _output.Count), ["type"] = "function_call", ["status"] = "in_progress", ["arguments"] = "",
                    ["call_id"] = callId, ["name"] = Str(function, "name"),
                };
                open = Add(item);
                _calls[index] = open;
                _call = open;
                _arguments[item] = new System.Text.StringBuilder();
            }
            if (Str(function, "arguments") is { Length: > 0 } arguments)
            {
                _arguments[open.Item].Append(arguments);
                Event("response.function_call_arguments.delta", new JsonObject
                {
                    ["item_id"] = Str(open.Item, "id"), ["output_index"] = open.Index, ["delta"] = arguments,
                });
            }
        }

        private (JsonObject Item, int Index) Add(JsonObject item)
        {
            var index = _output.Count;
            _output.Add((JsonNode)item);
            Event("response.output_item.added", new JsonObject { ["output_index"] = index, ["item"] = item.DeepClone() });
            return (item, index);
        }

        private void CloseMessage()
        {
            if (_message is not var (item, index)) return;
            _message = null;
            var text = _text.ToString();
            var id = Str(item, "id");
            Event("response.output_text.done", new JsonObject
            {
                ["item_id"] = id, ["output_index"] = index, ["content_index"] = 0, ["text"] = text, ["logprobs"] = new JsonArray(),
            });
            Event("response.content_part.done", new JsonObject { ["item_id"] = id, ["output_index"] = index, ["content_index"] = 0, ["part"] = ResponseShape.TextPart(text) });
            item["status"] = "completed";
            item["content"] = new JsonArray(ResponseShape.TextPart(text));
            Event("response.output_item.done", new JsonObject { ["output_index"] = index, ["item"] = item.DeepClone() });
        }

        private void CloseCall()
        {
            if (_call is not var (item, index)) return;
            _call = null;
            var arguments = _arguments[item].ToString();
            Event("response.function_call_arguments.done", new JsonObject
            {
                ["item_id"] = Str(item, "id"), ["output_index"] = index, ["name"] = Str(item, "name"), ["arguments"] = arguments,
            });
            item["status"] = "completed";
            item["arguments"] = arguments;
            Event("response.output_item.done", new JsonObject { ["output_index"] = index, ["item"] = item.DeepClone() });
        }

        // Named events, the type repeated in the data with the event's number, as OpenAI sends them.
        private void Event(string type, JsonObject data)
        {
            var body = new JsonObject { ["type"] = type, ["sequence_number"] = _sequence++ };
            foreach (var (name, value) in data.ToList())
            {
                data.Remove(name);
                body[name] = value;
            }
            ServerSentEvents.Write(output, JsonSerializer.SerializeToUtf8Bytes(body, GatewayJsonContext.Wire.JsonObject), type);
        }
    }
}
