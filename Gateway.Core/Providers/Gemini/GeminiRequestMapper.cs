using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Errors;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers.Gemini;

/// <summary>
/// OpenAI chat request → Gemini <c>GenerateContentRequest</c>
/// (https://ai.google.dev/api/generate-content): system/developer messages → <c>systemInstruction</c>;
/// user → role "user", assistant → role "model"; tool calls → <c>functionCall</c> parts (with the
/// thought signature carried in the tool-call id); tool results → <c>functionResponse</c> parts in a
/// user turn; consecutive turns of one role merged.
/// </summary>
internal static class GeminiRequestMapper
{
    public static JsonObject Map(UpstreamCall call)
    {
        var request = call.Request;
        var system = new List<string>();
        var contents = new JsonArray();
        var callNames = new Dictionary<string, string>(StringComparer.Ordinal);

        foreach (var message in request.Messages!)
        {
            switch (message.Role)
            {
                case "system" or "developer":
                    system.Add(OpenAIRequestView.Text(message));
                    break;
                case "user":
                    Add(contents, "user", [.. OpenAIRequestView.Parts(message).Select(Part)]);
                    break;
                case "assistant":
                    var parts = new List<JsonObject>();
                    var text = OpenAIRequestView.Text(message);
                    if (text.Length > 0) parts.Add(new JsonObject { ["text"] = text });
                    foreach (var toolCall in OpenAIRequestView.ToolCalls(message))
                    {
                        callNames[toolCall.Id] = toolCall.Name;
                        var part = new JsonObject { ["functionCall"] = new JsonObject { ["name"] = toolCall.Name, ["args"] = JsonNode.Parse(toolCall.Arguments.GetRawText()) } };
                        if (GeminiToolCallIds.Signature(toolCall.Id) is { } signature) part["thoughtSignature"] = signature;
                        parts.Add(part);
                    }
                    if (parts.Count > 0) Add(contents, "model", parts);
                    break;
                case "tool" or "function":
                    var name = message.ToolCallId is { } id && callNames.TryGetValue(id, out var known) ? known : message.Name
                        ?? throw new RequestMappingException(GatewayError.BadRequest(
                            "Invalid 'messages': a tool message's tool_call_id must match an earlier assistant tool call.", "messages", "invalid_value"));
                    Add(contents, "user", [new JsonObject
                    {
                        ["functionResponse"] = new JsonObject { ["name"] = name, ["response"] = new JsonObject { ["output"] = Output(OpenAIRequestView.Text(message)) } },
                    }]);
                    break;
            }
        }

        var body = new JsonObject();
        if (system.Count > 0) body["systemInstruction"] = new JsonObject { ["parts"] = new JsonArray(new JsonObject { ["text"] = string.Join("\n\n", system) }) };
        body["contents"] = contents;

        var tools = OpenAIRequestView.Tools(request);
        if (tools.Count > 0)
        {
            body["tools"] = new JsonArray(new JsonObject
            {
                ["functionDeclarations"] = new JsonArray([.. tools.Select(t =>
                {
                    var declaration = new JsonObject { ["name"] = t.Name };
                    if (t.Description is not null) declaration["description"] = t.Description;
                    if (t.Parameters is { } parameters && HasProperties(parameters)) declaration["parameters"] = GeminiSchema.Convert(parameters);
                    return (JsonNode)declaration;
                })]),
            });
        }
        if (OpenAIRequestView.ToolChoice(request) is { } choice)
        {
            var config = new JsonObject
            {
                ["mode"] = choice.Kind switch { "none" => "NONE", "required" or "function" => "ANY", _ => "AUTO" },
            };
            if (choice.Function is { } forced) config["allowedFunctionNames"] = new JsonArray(forced);
            body["toolConfig"] = new JsonObject { ["functionCallingConfig"] = config };
        }

        var generation = new JsonObject();
        if ((OpenAIRequestView.MaxTokens(request) ?? call.Route.MaxOutputTokens) is { } max) generation["maxOutputTokens"] = max;
        if (request.Temperature is { } temperature) generation["temperature"] = temperature;
        if (request.TopP is { } topP) generation["topP"] = topP;
        if (OpenAIRequestView.Stop(request) is { Count: > 0 } stop) generation["stopSequences"] = new JsonArray([.. stop.Select(s => (JsonNode?)s)]);
        if (request.N is { } n and > 1) generation["candidateCount"] = n;
        if (Extra(request, "seed") is { ValueKind: JsonValueKind.Number } seed) generation["seed"] = seed.GetInt64();
        if (Extra(request, "presence_penalty") is { ValueKind: JsonValueKind.Number } presence) generation["presencePenalty"] = presence.GetDouble();
        if (Extra(request, "frequency_penalty") is { ValueKind: JsonValueKind.Number } frequency) generation["frequencyPenalty"] = frequency.GetDouble();
        switch (OpenAIRequestView.ResponseFormat(request))
        {
            case ("json_object", _, _):
                generation["responseMimeType"] = "application/json";
                break;
            case ("json_schema", { } schema, _):
                generation["responseMimeType"] = "application/json";
                generation["responseSchema"] = GeminiSchema.Convert(schema);
                break;
        }
        if (generation.Count > 0) body["generationConfig"] = generation;
        return body;
    }

    private static JsonObject Part(ContentPart part) => part switch
    {
        { IsText: true } => new JsonObject { ["text"] = part.Text },
        { Base64Data: { } data } => new JsonObject { ["inlineData"] = new JsonObject { ["mimeType"] = part.MediaType, ["data"] = data } },
        _ => new JsonObject { ["fileData"] = new JsonObject { ["mimeType"] = GuessMediaType(part.ImageUrl!), ["fileUri"] = part.ImageUrl } },
    };

    // fileData needs a MIME type; an image URL usually says it by its extension.
    private static string GuessMediaType(string url) => Path.GetExtension(new Uri(url, UriKind.Absolute).AbsolutePath).ToLowerInvariant() switch
    {
        ".png" => "image/png",
        ".gif" => "image/gif",
        ".webp" => "image/webp",
        ".heic" => "image/heic",
        _ => "image/jpeg",
    };

    /// <summary>A tool's result: its JSON when it is JSON, else the text.</summary>
    private static JsonNode? Output(string text)
    {
        try
        {
            return JsonNode.Parse(text);
        }
        catch (JsonException)
        {
            return JsonValue.Create(text);
        }
    }

    private static void Add(JsonArray contents, string role, List<JsonObject> parts)
    {
        if (parts.Count == 0) return;
        if (contents.Count > 0 && contents[^1]!["role"]!.GetValue<string>() == role)
        {
            var existing = contents[^1]!["parts"]!.AsArray();
            foreach (var part in parts) existing.Add((JsonNode)part);
            return;
        }
        contents.Add((JsonNode)new JsonObject { ["role"] = role, ["parts"] = new JsonArray([.. parts]) });
    }

    // Gemini rejects an OBJECT schema with no properties for function parameters; a tool without arguments sends none.
    private static bool HasProperties(JsonElement schema) =>
        schema.TryGetProperty("properties", out var p) && p.ValueKind == JsonValueKind.Object && p.EnumerateObject().Any();

    private static JsonElement? Extra(ChatCompletionRequest request, string name) =>
        request.Extra is { } extra && extra.TryGetValue(name, out var value) ? value : null;
}
