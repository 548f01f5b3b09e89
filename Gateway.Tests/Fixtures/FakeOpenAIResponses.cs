using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Fixtures;

/// <summary>
/// The fake's Responses API (<c>POST /v1/responses</c>), faithful to the documented format
/// (https://platform.openai.com/docs/api-reference/responses/create and …/responses-streaming): a <c>response</c> object whose
/// <c>output</c> holds a <c>reasoning</c> item, a <c>web_search_call</c> item when the request declares the <c>web_search</c>
/// built-in tool, then the answer's <c>message</c> (or, for <c>fn-call*</c> models whose input does not end on a
/// <c>function_call_output</c>, a <c>function_call</c> of the first function tool); usage with <c>input_tokens_details</c> and
/// <c>output_tokens_details</c>. Streamed: named events numbered by <c>sequence_number</c>, from <c>response.created</c> to
/// <c>response.completed</c>, no <c>[DONE]</c>. <c>status-NNN</c> answers that status; <c>slow-reasoning</c> waits 3 s after its reasoning item begins; <c>no-event-names</c> streams data lines only (no <c>event:</c> lines); <c>drop-mid-stream</c> ends the stream
/// after two text deltas, without <c>response.completed</c>.
/// </summary>
public sealed partial class FakeOpenAI
{
    public const string ResponsesAnswer = "Hello from the Responses API.";
    public const int ResponsesInputTokens = 31;
    public const int ResponsesCachedTokens = 4;
    public const int ResponsesOutputTokens = 9;
    public const int ResponsesReasoningTokens = 3;

    private async Task ResponsesAsync(HttpContext http)
    {
        using var reader = new StreamReader(http.Request.Body, Encoding.UTF8);
        var text = await reader.ReadToEndAsync();
        var recorded = new RecordedRequest(text, http.Request.Headers.Authorization.ToString()) { Path = http.Request.Path };
        Requests.Enqueue(recorded);
        http.RequestAborted.Register(() => recorded.Aborted = true);
        if (await RejectedAsync(http)) return;
        var ct = http.RequestAborted;
        var body = JsonNode.Parse(text)!.AsObject();
        var model = body["model"]!.GetValue<string>();
        if (await StatusAsync(http, model, ct)) return;

        var tools = body["tools"] as JsonArray ?? [];
        var input = body["input"] as JsonArray;
        var items = new List<JsonObject>
        {
            new() { ["type"] = "reasoning", ["id"] = "rs_fake0001", ["summary"] = new JsonArray() },
        };
        if (tools.Any(t => t?["type"]?.GetValue<string>() == "web_search"))
            items.Add(new JsonObject
            {
                ["type"] = "web_search_call", ["id"] = "ws_fake0001", ["status"] = "completed",
                ["action"] = new JsonObject { ["type"] = "search", ["query"] = "weather in Paris" },
            });
        var function = tools.FirstOrDefault(t => t?["type"]?.GetValue<string>() == "function");
        var callsFunction = model.StartsWith("fn-call", StringComparison.Ordinal) && function is not null
            && input?.LastOrDefault()?["type"]?.GetValue<string>() != "function_call_output";
        items.Add(callsFunction
            ? new JsonObject
            {
                ["type"] = "function_call", ["id"] = "fc_fake0001", ["call_id"] = ToolCallId, ["name"] = function!["name"]!.GetValue<string>(),
                ["arguments"] = ToolArguments, ["status"] = "completed",
            }
            : new JsonObject
            {
                ["type"] = "message", ["id"] = "msg_fake0001", ["status"] = "completed", ["role"] = "assistant",
                ["content"] = new JsonArray(new JsonObject { ["type"] = "output_text", ["text"] = ResponsesAnswer, ["annotations"] = new JsonArray(), ["logprobs"] = new JsonArray() }),
            });

        var response = Response(body, model, "completed", new JsonArray([.. items.Select(i => (JsonNode)i.DeepClone())]), Usage());
        if (body["stream"]?.GetValue<bool>() != true)
        {
            http.Response.ContentType = "application/json";
            await http.Response.WriteAsync(response.ToJsonString(), ct);
            return;
        }

        http.Response.ContentType = "text/event-stream; charset=utf-8";
        var sequence = 0;
        async Task EventAsync(string type, JsonObject data)
        {
            var payload = new JsonObject { ["type"] = type, ["sequence_number"] = sequence++ };
            foreach (var (name, value) in data.ToList())
            {
                data.Remove(name);
                payload[name] = value;
            }
            // no-event-names: as a server that sends only data lines (the type is in each event's JSON).
            await http.Response.WriteAsync(model == "no-event-names" ? $"data: {payload.ToJsonString()}\n\n" : $"event: {type}\ndata: {payload.ToJsonString()}\n\n", ct);
            await http.Response.Body.FlushAsync(ct);
        }
        var opening = Response(body, model, "in_progress", [], null);
        await EventAsync("response.created", new JsonObject { ["response"] = opening.DeepClone() });
        await EventAsync("response.in_progress", new JsonObject { ["response"] = opening.DeepClone() });
        for (var index = 0; index < items.Count; index++)
        {
            var item = items[index];
            var id = item["id"]!.GetValue<string>();
            var started = item.DeepClone().AsObject();
            started["status"] = "in_progress";
            if (item["type"]!.GetValue<string>() == "message") started["content"] = new JsonArray();
            if (item["type"]!.GetValue<string>() == "function_call") started["arguments"] = "";
            await EventAsync("response.output_item.added", new JsonObject { ["output_index"] = index, ["item"] = started });
            // slow-reasoning: a model that thinks for 3 s before it writes (its reasoning item is all it has said meanwhile).
            if (model == "slow-reasoning" && item["type"]!.GetValue<string>() == "reasoning") await Task.Delay(3000, ct);
            switch (item["type"]!.GetValue<string>())
            {
                case "web_search_call":
                    foreach (var step in (string[])["in_progress", "searching", "completed"])
                        await EventAsync("response.web_search_call." + step, new JsonObject { ["output_index"] = index, ["item_id"] = id });
                    break;
                case "function_call":
                    foreach (var piece in (string[])[ToolArguments[..5], ToolArguments[5..]])
                        await EventAsync("response.function_call_arguments.delta", new JsonObject { ["item_id"] = id, ["output_index"] = index, ["delta"] = piece });
                    await EventAsync("response.function_call_arguments.done", new JsonObject
                    {
                        ["item_id"] = id, ["output_index"] = index, ["name"] = item["name"]!.DeepClone(), ["arguments"] = ToolArguments,
                    });
                    break;
                case "message":
                    var part = new JsonObject { ["type"] = "output_text", ["text"] = "", ["annotations"] = new JsonArray(), ["logprobs"] = new JsonArray() };
                    await EventAsync("response.content_part.added", new JsonObject { ["item_id"] = id, ["output_index"] = index, ["content_index"] = 0, ["part"] = part });
                    var pieces = (string[])["Hello", " from", " the", " Responses", " API."];
                    for (var i = 0; i < pieces.Length; i++)
                    {
                        if (model == "drop-mid-stream" && i == 2) return; // the stream ends half-way, without response.completed
                        await EventAsync("response.output_text.delta", new JsonObject
                        {
                            ["item_id"] = id, ["output_index"] = index, ["content_index"] = 0, ["delta"] = pieces[i], ["logprobs"] = new JsonArray(),
                        });
                    }
                    await EventAsync("response.output_text.done", new JsonObject
                    {
                        ["item_id"] = id, ["output_index"] = index, ["content_index"] = 0, ["text"] = ResponsesAnswer, ["logprobs"] = new JsonArray(),
                    });
                    await EventAsync("response.content_part.done", new JsonObject
                    {
                        ["item_id"] = id, ["output_index"] = index, ["content_index"] = 0, ["part"] = item["content"]![0]!.DeepClone(),
                    });
                    break;
            }
            await EventAsync("response.output_item.done", new JsonObject { ["output_index"] = index, ["item"] = item.DeepClone() });
        }
        await EventAsync("response.completed", new JsonObject { ["response"] = response });
    }

    private static JsonObject Usage() => new()
    {
        ["input_tokens"] = ResponsesInputTokens,
        ["input_tokens_details"] = new JsonObject { ["cached_tokens"] = ResponsesCachedTokens },
        ["output_tokens"] = ResponsesOutputTokens,
        ["output_tokens_details"] = new JsonObject { ["reasoning_tokens"] = ResponsesReasoningTokens },
        ["total_tokens"] = ResponsesInputTokens + ResponsesOutputTokens,
    };

    // The response object, its request-echoing fields as OpenAI fills them.
    private static JsonObject Response(JsonObject request, string model, string status, JsonArray output, JsonObject? usage) => new()
    {
        ["id"] = "resp_fake0001",
        ["object"] = "response",
        ["created_at"] = 1_741_476_542,
        ["status"] = status,
        ["background"] = false,
        ["error"] = null,
        ["incomplete_details"] = null,
        ["instructions"] = request["instructions"]?.DeepClone(),
        ["max_output_tokens"] = request["max_output_tokens"]?.DeepClone(),
        ["model"] = model + "-2025-04-14",
        ["output"] = output,
        ["parallel_tool_calls"] = true,
        ["previous_response_id"] = request["previous_response_id"]?.DeepClone(),
        ["reasoning"] = new JsonObject { ["effort"] = request["reasoning"]?["effort"]?.DeepClone(), ["summary"] = null },
        ["store"] = request["store"]?.DeepClone() ?? true,
        ["temperature"] = 1.0,
        ["text"] = new JsonObject { ["format"] = new JsonObject { ["type"] = "text" } },
        ["tool_choice"] = request["tool_choice"]?.DeepClone() ?? "auto",
        ["tools"] = request["tools"]?.DeepClone() ?? new JsonArray(),
        ["top_p"] = 1.0,
        ["truncation"] = "disabled",
        ["usage"] = usage,
        ["user"] = null,
        ["metadata"] = request["metadata"]?.DeepClone() ?? new JsonObject(),
    };
}
