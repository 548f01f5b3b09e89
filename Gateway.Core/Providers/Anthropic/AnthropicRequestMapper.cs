using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Errors;

namespace Gateway.Core.Providers.Anthropic;

/// <summary>
/// OpenAI chat request → Anthropic Messages request (https://docs.anthropic.com/en/api/messages):
/// system/developer → top-level <c>system</c>; assistant tool calls → <c>tool_use</c> blocks; tool
/// messages → <c>tool_result</c> blocks in a user turn; consecutive turns of one role merged;
/// <c>max_tokens</c> always sent. JSON mode is a forced tool whose input is the answer.
/// </summary>
internal static class AnthropicRequestMapper
{
    public const string DefaultVersion = "2023-06-01";

    /// <summary>Name of the forced tool that carries a JSON-mode answer (turned back into text).</summary>
    public const string JsonTool = "json_response";

    /// <summary>Default output limit when neither the client nor the model row gives one.</summary>
    public const int DefaultMaxTokens = 4096;

    public static (JsonObject Body, string? JsonToolName) Map(UpstreamCall call)
    {
        var request = call.Request;
        var version = call.Route.Provider.Settings.AnthropicVersion ?? DefaultVersion;
        var system = new List<string>();
        var messages = new JsonArray();

        foreach (var message in request.Messages!)
        {
            switch (message.Role)
            {
                case "system" or "developer":
                    system.Add(OpenAIRequestView.Text(message));
                    break;
                case "user":
                    Add(messages, "user", [.. OpenAIRequestView.Parts(message).Select(Block)]);
                    break;
                case "assistant":
                    var blocks = new List<JsonObject>();
                    var text = OpenAIRequestView.Text(message);
                    if (text.Length > 0) blocks.Add(new JsonObject { ["type"] = "text", ["text"] = text });
                    foreach (var toolCall in OpenAIRequestView.ToolCalls(message))
                    {
                        blocks.Add(new JsonObject
                        {
                            ["type"] = "tool_use", ["id"] = toolCall.Id, ["name"] = toolCall.Name, ["input"] = JsonNode.Parse(toolCall.Arguments.GetRawText()),
                        });
                    }
                    Add(messages, "assistant", blocks);
                    break;
                case "tool":
                    if (message.ToolCallId is null)
                        throw new RequestMappingException(GatewayError.BadRequest("Invalid 'messages': a tool message needs tool_call_id.", "messages", "invalid_value"));
                    Add(messages, "user", [new JsonObject
                    {
                        ["type"] = "tool_result", ["tool_use_id"] = message.ToolCallId, ["content"] = OpenAIRequestView.Text(message),
                    }]);
                    break;
                case "function":
                    throw new RequestMappingException(GatewayError.BadRequest(
                        "Invalid 'messages': legacy 'function' messages are not supported for Anthropic models; use tools.", "messages", "invalid_value"));
            }
        }

        if (request.N is > 1)
            throw new RequestMappingException(GatewayError.BadRequest("Anthropic models return one choice; 'n' must be 1.", "n", "invalid_value"));
        var body = new JsonObject
        {
            ["model"] = call.Route.UpstreamModel,
            ["max_tokens"] = OpenAIRequestView.MaxTokens(request) ?? call.Route.MaxOutputTokens ?? DefaultMaxTokens,
        };
        if (system.Count > 0) body["system"] = string.Join("\n\n", system);
        body["messages"] = messages;
        AddSampling(body, request, version, call.Route.Provider.Settings.AnthropicSampling);
        if (OpenAIRequestView.Stop(request) is { Count: > 0 } stop) body["stop_sequences"] = new JsonArray([.. stop.Select(s => (JsonNode?)s)]);
        // Anthropic wants an opaque id (no names or emails): the client's user, hashed.
        if (request.User is { Length: > 0 } user)
            body["metadata"] = new JsonObject { ["user_id"] = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(user)))[..32] };
        if (request.IsStreaming) body["stream"] = true;

        var tools = OpenAIRequestView.Tools(request);
        var jsonTool = AddResponseFormat(body, request, tools.Count > 0);
        if (tools.Count > 0)
        {
            body["tools"] = new JsonArray([.. tools.Select(t =>
            {
                var tool = new JsonObject { ["name"] = t.Name };
                if (t.Description is not null) tool["description"] = t.Description;
                tool["input_schema"] = t.Parameters is { } p ? JsonNode.Parse(p.GetRawText()) : new JsonObject { ["type"] = "object", ["properties"] = new JsonObject() };
                return (JsonNode)tool;
            })]);
        }
        if (jsonTool is null && tools.Count > 0 && ToolChoice(request) is { } choice) body["tool_choice"] = choice;
        return (body, jsonTool);
    }

    /// <summary>
    /// API version 2026-10-21 removed temperature/top_p/top_k (sending any is a 400), and so do Claude
    /// Opus 4.7 and later under 2023-06-01 (setting <c>anthropic_sampling: "none"</c>): then none is sent.
    /// Otherwise (<c>"one"</c>, the default) Claude Sonnet 4.5 and later refuse temperature with top_p, so
    /// only temperature goes when a client sends both; <c>"all"</c> sends both. Anthropic's temperature
    /// range is 0–1 where OpenAI's is 0–2, so it is clamped to 1.
    /// </summary>
    private static void AddSampling(JsonObject body, Wire.ChatCompletionRequest request, string version, string? sampling)
    {
        if (string.CompareOrdinal(version, "2026-10-21") >= 0 || sampling == "none") return;
        if (request.Temperature is { } temperature) body["temperature"] = Math.Min(temperature, 1.0);
        if (request.TopP is { } topP && (sampling == "all" || request.Temperature is null)) body["top_p"] = topP;
    }

    private static JsonObject? ToolChoice(Wire.ChatCompletionRequest request)
    {
        var choice = OpenAIRequestView.ToolChoice(request);
        var single = request.ParallelToolCalls == false;
        if (choice is null && !single) return null;
        var result = choice?.Kind switch
        {
            "none" => new JsonObject { ["type"] = "none" },
            "required" => new JsonObject { ["type"] = "any" },
            "function" => new JsonObject { ["type"] = "tool", ["name"] = choice.Value.Function },
            _ => new JsonObject { ["type"] = "auto" },
        };
        if (single && choice?.Kind != "none") result["disable_parallel_tool_use"] = true;
        return result;
    }

    /// <summary>
    /// JSON mode: without client tools, a forced tool whose input schema is the wanted shape (works on
    /// every tool-capable Claude model); with client tools, <c>output_config.format</c> (Claude 4.5+).
    /// Returns the forced tool's name, if one was added.
    /// </summary>
    private static string? AddResponseFormat(JsonObject body, Wire.ChatCompletionRequest request, bool clientTools)
    {
        switch (OpenAIRequestView.ResponseFormat(request))
        {
            case ("json_schema", { } schema, _) when clientTools:
                body["output_config"] = new JsonObject { ["format"] = new JsonObject { ["type"] = "json_schema", ["schema"] = JsonNode.Parse(schema.GetRawText()) } };
                return null;
            case ("json_object", _, _) when clientTools:
                throw new RequestMappingException(GatewayError.BadRequest(
                    "response_format json_object cannot be combined with tools for Anthropic models; use json_schema.", "response_format", "invalid_value"));
            case ("json_schema" or "json_object", var schema, _):
                body["tools"] = new JsonArray(new JsonObject
                {
                    ["name"] = JsonTool,
                    ["description"] = "Return the answer as this JSON object.",
                    ["input_schema"] = schema is { } s ? JsonNode.Parse(s.GetRawText()) : new JsonObject { ["type"] = "object" },
                });
                body["tool_choice"] = new JsonObject { ["type"] = "tool", ["name"] = JsonTool };
                return JsonTool;
            default:
                return null;
        }
    }

    private static JsonObject Block(ContentPart part) => part switch
    {
        { IsText: true } => new JsonObject { ["type"] = "text", ["text"] = part.Text },
        { Base64Data: { } data } => new JsonObject
        {
            ["type"] = "image", ["source"] = new JsonObject { ["type"] = "base64", ["media_type"] = part.MediaType, ["data"] = data },
        },
        _ => new JsonObject { ["type"] = "image", ["source"] = new JsonObject { ["type"] = "url", ["url"] = part.ImageUrl } },
    };

    // The API wants user and assistant turns to alternate: consecutive turns of one role become one.
    private static void Add(JsonArray messages, string role, List<JsonObject> blocks)
    {
        if (blocks.Count == 0) return;
        if (messages.Count > 0 && messages[^1]!["role"]!.GetValue<string>() == role)
        {
            var existing = messages[^1]!["content"]!.AsArray();
            foreach (var block in blocks) existing.Add((JsonNode)block);
            return;
        }
        messages.Add((JsonNode)new JsonObject { ["role"] = role, ["content"] = new JsonArray([.. blocks]) });
    }
}
