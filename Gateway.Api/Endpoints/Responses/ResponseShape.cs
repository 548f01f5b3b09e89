using System.Text.Json;
using System.Text.Json.Nodes;

namespace Gateway.Api.Endpoints.Responses;

/// <summary>
/// One response's object as OpenAI's Responses API shapes it: its id, creation time and the fields that echo the request
/// (<c>instructions</c>, <c>tools</c>, <c>text</c>, <c>metadata</c>… with OpenAI's defaults where the request left them out), around
/// the output items and usage of the answer.
/// </summary>
internal sealed class ResponseShape(string id, long createdAt, JsonObject request)
{
    public string Id { get; } = id;

    /// <summary>An output item's id: its kind's prefix (<c>msg</c>, <c>fc</c>) with the response's id and the item's place.</summary>
    public string ItemId(string prefix, int index) => $"{prefix}_{Id["resp_".Length..]}{index:D2}";

    /// <summary>The response object.</summary>
    /// <param name="status"><c>in_progress</c>, <c>completed</c>, <c>incomplete</c> or <c>failed</c>.</param>
    /// <param name="model">The model that answered (the upstream's name for it), else the one asked for.</param>
    /// <param name="output">The output items.</param>
    /// <param name="usage">Responses usage (null until known).</param>
    /// <param name="error"><c>{code, message}</c> of a failed response.</param>
    /// <param name="incomplete"><c>{reason}</c> of an incomplete one.</param>
    public JsonObject Build(string status, string? model, JsonArray output, JsonObject? usage, JsonObject? error, JsonObject? incomplete)
    {
        var text = Echo("text") as JsonObject ?? new JsonObject();
        if (text["format"] is null) text["format"] = new JsonObject { ["type"] = "text" };
        var reasoning = request["reasoning"] as JsonObject;
        return new JsonObject
        {
            ["id"] = Id,
            ["object"] = "response",
            ["created_at"] = createdAt,
            ["status"] = status,
            ["background"] = false,
            ["error"] = error,
            ["incomplete_details"] = incomplete,
            ["instructions"] = Echo("instructions"),
            ["max_output_tokens"] = Echo("max_output_tokens"),
            ["model"] = model ?? Echo("model"),
            ["output"] = output,
            ["parallel_tool_calls"] = Echo("parallel_tool_calls") ?? true,
            ["previous_response_id"] = Echo("previous_response_id"),
            ["reasoning"] = new JsonObject { ["effort"] = reasoning?["effort"]?.DeepClone(), ["summary"] = reasoning?["summary"]?.DeepClone() },
            ["store"] = Echo("store") ?? true,
            ["temperature"] = Echo("temperature") ?? 1.0,
            ["text"] = text,
            ["tool_choice"] = Echo("tool_choice") ?? "auto",
            ["tools"] = Echo("tools") ?? new JsonArray(),
            ["top_p"] = Echo("top_p") ?? 1.0,
            ["truncation"] = Echo("truncation") ?? "disabled",
            ["usage"] = usage,
            ["user"] = Echo("user"),
            ["metadata"] = Echo("metadata") ?? new JsonObject(),
        };
    }

    /// <summary>
    /// A Responses upstream's response object as this gateway's: its id (the upstream's names a response the client cannot reach
    /// through the gateway) and the <c>previous_response_id</c> the client sent (the upstream was sent the conversation instead).
    /// </summary>
    public JsonObject Own(JsonObject upstream)
    {
        upstream["id"] = Id;
        upstream["previous_response_id"] = Echo("previous_response_id");
        return upstream;
    }

    /// <summary>A <c>chat.completion</c> as the finished response object.</summary>
    public JsonObject FromCompletion(JsonObject completion)
    {
        var choice = completion["choices"] is JsonArray { Count: > 0 } choices ? choices[0] as JsonObject : null;
        var message = choice?["message"] as JsonObject;
        var incomplete = Incomplete(ResponsesResult.Str(choice, "finish_reason"));
        var status = incomplete is null ? "completed" : "incomplete";
        var output = new JsonArray();
        var refusal = ResponsesResult.Str(message, "refusal");
        if (ResponsesResult.Str(message, "content") is { Length: > 0 } text || refusal is { Length: > 0 })
        {
            output.Add((JsonNode)new JsonObject
            {
                ["id"] = ItemId("msg", 0), ["type"] = "message", ["status"] = status, ["role"] = "assistant",
                ["content"] = new JsonArray(refusal is { Length: > 0 } ? new JsonObject { ["type"] = "refusal", ["refusal"] = refusal } : TextPart(ResponsesResult.Str(message, "content")!)),
            });
        }
        if (message?["tool_calls"] is JsonArray calls)
        {
            foreach (var call in calls.OfType<JsonObject>())
            {
                var function = call["function"] as JsonObject;
                output.Add((JsonNode)new JsonObject
                {
                    ["id"] = ItemId("fc", output.Count), ["type"] = "function_call", ["status"] = status,
                    ["arguments"] = ResponsesResult.Str(function, "arguments") ?? "", ["call_id"] = ResponsesResult.Str(call, "id") ?? ItemId("call", output.Count),
                    ["name"] = ResponsesResult.Str(function, "name"),
                });
            }
        }
        return Build(status, ResponsesResult.Str(completion, "model"), output, ResponsesResult.Usage(completion["usage"] as JsonObject), null, incomplete);
    }

    /// <summary>An <c>output_text</c> content part.</summary>
    public static JsonObject TextPart(string text) =>
        new() { ["type"] = "output_text", ["annotations"] = new JsonArray(), ["logprobs"] = new JsonArray(), ["text"] = text };

    /// <summary>The <c>incomplete_details</c> a chat finish reason means, or null for a complete answer.</summary>
    public static JsonObject? Incomplete(string? finishReason) => finishReason switch
    {
        "length" => new JsonObject { ["reason"] = "max_output_tokens" },
        "content_filter" => new JsonObject { ["reason"] = "content_filter" },
        _ => null,
    };

    private JsonNode? Echo(string name) =>
        request[name] is { } value && value.GetValueKind() != JsonValueKind.Null ? value.DeepClone() : null;
}
