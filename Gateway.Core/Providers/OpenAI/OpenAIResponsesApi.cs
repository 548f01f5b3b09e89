using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers.OpenAI;

/// <summary>
/// OpenAI's Responses API as an upstream (<c>POST {base}/responses</c>, https://platform.openai.com/docs/api-reference/responses),
/// for requests that came through the gateway's Responses door to a provider that serves it: the client's body goes as it wrote it
/// (built-in tools, reasoning items and all), and the answer comes back as the upstream wrote it. What the gateway meters, caches and
/// counts is read from it here: usage (<c>input_tokens</c> with its <c>cached_tokens</c>, <c>output_tokens</c>) and a
/// <c>chat.completion</c> with the answer's text and function calls.
/// </summary>
internal static class OpenAIResponsesApi
{
    /// <summary>
    /// The body sent: the client's, with the route's model, streaming as the call asks, and the call's output limit as
    /// <c>max_output_tokens</c> (the client's own, or the reservation a capped key's budget made when it named none).
    /// </summary>
    public static byte[] Body(UpstreamCall call, NativeRequest native)
    {
        var body = native.Body.DeepClone().AsObject();
        body["model"] = call.Route.UpstreamModel;
        if (call.Request.IsStreaming) body["stream"] = true;
        else body.Remove("stream");
        if ((call.Request.MaxTokens ?? call.Request.MaxCompletionTokens) is { } limit) body["max_output_tokens"] = limit;
        return JsonSerializer.SerializeToUtf8Bytes(body, GatewayJsonContext.Wire.JsonObject);
    }

    /// <summary>A response object as what the gateway meters (its usage) and a <c>chat.completion</c> of its answer.</summary>
    public static UpstreamCompletion Answer(byte[] raw, string fallbackId)
    {
        using var doc = JsonDocument.Parse(raw);
        var root = doc.RootElement;
        var model = OpenAIRequestView.Str(root, "model");
        TokenUsage? usage = null;
        ChatUsage? wire = null;
        if (root.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object) (usage, wire) = Usage(u);
        var text = new System.Text.StringBuilder();
        var calls = new JsonArray();
        if (root.TryGetProperty("output", out var output) && output.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in output.EnumerateArray())
            {
                switch (OpenAIRequestView.Str(item, "type"))
                {
                    case "message" when item.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.Array:
                        foreach (var part in content.EnumerateArray())
                            text.Append(OpenAIRequestView.Str(part, "text") ?? OpenAIRequestView.Str(part, "refusal"));
                        break;
                    case "function_call":
                        calls.Add((JsonNode)new JsonObject
                        {
                            ["id"] = OpenAIRequestView.Str(item, "call_id"), ["type"] = "function",
                            ["function"] = new JsonObject { ["name"] = OpenAIRequestView.Str(item, "name"), ["arguments"] = OpenAIRequestView.Str(item, "arguments") ?? "" },
                        });
                        break;
                }
            }
        }
        var message = new JsonObject { ["role"] = "assistant", ["content"] = text.Length > 0 ? text.ToString() : null };
        if (calls.Count > 0) message["tool_calls"] = calls;
        var completion = new JsonObject
        {
            ["id"] = OpenAIRequestView.Str(root, "id") ?? fallbackId,
            ["object"] = "chat.completion",
            ["created"] = root.TryGetProperty("created_at", out var created) && created.TryGetInt64(out var at) ? at : 0,
            ["model"] = model,
            ["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0, ["message"] = message, ["finish_reason"] = FinishReason(root, calls.Count > 0),
            }),
        };
        if (wire is not null)
            completion["usage"] = new JsonObject
            {
                ["prompt_tokens"] = wire.PromptTokens, ["completion_tokens"] = wire.CompletionTokens, ["total_tokens"] = wire.TotalTokens,
                ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = wire.PromptTokensDetails?.CachedTokens ?? 0 },
                ["completion_tokens_details"] = new JsonObject { ["reasoning_tokens"] = wire.CompletionTokensDetails?.ReasoningTokens ?? 0 },
            };
        var body = JsonSerializer.SerializeToUtf8Bytes(completion, GatewayJsonContext.Wire.JsonObject);
        return new UpstreamCompletion(body, usage, model, usage is null ? text.ToString() : "") { Native = raw };
    }

    /// <summary>Responses usage (https://platform.openai.com/docs/api-reference/responses/object#responses/object-usage): the
    /// prompt with its cached part, the output with its reasoning part.</summary>
    public static (TokenUsage Usage, ChatUsage Wire) Usage(JsonElement usage)
    {
        var input = TokenUsage.Int(usage, "input_tokens");
        var output = TokenUsage.Int(usage, "output_tokens");
        var cached = usage.TryGetProperty("input_tokens_details", out var inputDetails) ? TokenUsage.Int(inputDetails, "cached_tokens") : 0;
        var reasoning = usage.TryGetProperty("output_tokens_details", out var outputDetails) ? TokenUsage.Int(outputDetails, "reasoning_tokens") : 0;
        return (new TokenUsage(input, output, cached),
            new ChatUsage(input, output, input + output, new PromptTokensDetails(cached), new CompletionTokensDetails(reasoning)));
    }

    /// <summary>The chat finish reason a response's status means.</summary>
    public static string FinishReason(JsonElement response, bool calledFunctions) =>
        OpenAIRequestView.Str(response, "status") == "incomplete"
            ? response.TryGetProperty("incomplete_details", out var details) && OpenAIRequestView.Str(details, "reason") == "content_filter"
                ? "content_filter" : "length"
            : calledFunctions ? "tool_calls" : "stop";
}
