using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Fixtures;

/// <summary>
/// A fake Gemini API (v1beta generateContent / streamGenerateContent?alt=sse), written from
/// https://ai.google.dev/api/generate-content and validating requests as the real API does: the
/// x-goog-api-key header, user/model roles, one data field per part, Gemini's Schema subset in
/// function parameters (any other keyword: 400 "Unknown name … Cannot find field"), and, for
/// gemini-3 models, the thought signature on function calls of the current turn.
/// Model names script behaviour: *-blocked, *-malformed, *-max, status-NNN, *-api-key-invalid.
/// </summary>
public sealed class FakeGemini : FakeServer
{
    public const string ApiKey = "fake-gemini-key";
    public const string Signature = "c2lnbmF0dXJlLW9uZQ=="; // base64 of "signature-one"
    public const string Answer = "It is 21 degrees in Paris.";

    private static readonly HashSet<string> SchemaFields =
    [
        "type", "format", "title", "description", "nullable", "enum", "items", "minItems", "maxItems", "properties", "required",
        "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "minimum", "maximum", "anyOf", "propertyOrdering", "default", "example",
    ];

    private static readonly HashSet<string> PartFields = ["text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult"];

    public static Task<FakeGemini> StartAsync() => StartAsync(new FakeGemini(), "/v1beta");

    protected override void Map(WebApplication app)
    {
        app.MapPost("/v1beta/models/{call}", HandleAsync);
        app.MapGet("/v1beta/models", ListModelsAsync);
    }

    /// <summary>GET /v1beta/models (https://ai.google.dev/api/models#method:-models.list): one page, no nextPageToken.</summary>
    private async Task ListModelsAsync(HttpContext http)
    {
        var recorded = new RecordedRequest("", http.Request.Headers["x-goog-api-key"].ToString()) { Path = http.Request.Path + http.Request.QueryString };
        Requests.Enqueue(recorded);
        if (string.IsNullOrEmpty(recorded.Authorization))
        {
            await ErrorAsync(http, 403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.");
            return;
        }
        if (recorded.Authorization != ApiKey)
        {
            await ErrorAsync(http, 400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", """[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]""");
            return;
        }
        http.Response.ContentType = "application/json; charset=UTF-8";
        await http.Response.WriteAsync("""
            {
              "models": [
                {
                  "name": "models/gemini-2.5-flash", "version": "001", "displayName": "Gemini 2.5 Flash",
                  "description": "Stable version of Gemini 2.5 Flash.", "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
                  "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
                  "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": true
                },
                {
                  "name": "models/gemini-embedding-001", "version": "001", "displayName": "Gemini Embedding 001",
                  "description": "Obtain a distributed representation of a text.", "inputTokenLimit": 2048, "outputTokenLimit": 1,
                  "supportedGenerationMethods": ["embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"]
                }
              ]
            }
            """);
    }

    private async Task HandleAsync(HttpContext http, string call)
    {
        using var reader = new StreamReader(http.Request.Body, Encoding.UTF8);
        var text = await reader.ReadToEndAsync();
        var recorded = new RecordedRequest(text, http.Request.Headers["x-goog-api-key"].ToString()) { Path = http.Request.Path + http.Request.QueryString };
        Requests.Enqueue(recorded);

        var colon = call.LastIndexOf(':');
        var model = call[..colon];
        var method = call[(colon + 1)..];
        var stream = method == "streamGenerateContent";
        if (method == "batchEmbedContents" && recorded.Authorization == ApiKey)
        {
            await EmbedAsync(http, model, JsonNode.Parse(text)!.AsObject());
            return;
        }
        if (method is not ("generateContent" or "streamGenerateContent") || stream && http.Request.Query["alt"] != "sse")
        {
            await ErrorAsync(http, 404, "NOT_FOUND", $"Method {method} not found (this fake serves alt=sse streams only).");
            return;
        }
        if (string.IsNullOrEmpty(recorded.Authorization))
        {
            await ErrorAsync(http, 403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.");
            return;
        }
        if (recorded.Authorization != ApiKey || model.EndsWith("-api-key-invalid", StringComparison.Ordinal))
        {
            await ErrorAsync(http, 400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", """[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]""");
            return;
        }
        if (model.StartsWith("status-", StringComparison.Ordinal))
        {
            var status = int.Parse(model[7..], System.Globalization.CultureInfo.InvariantCulture);
            await ErrorAsync(http, status, status switch { 429 => "RESOURCE_EXHAUSTED", 503 => "UNAVAILABLE", 500 => "INTERNAL", _ => "INVALID_ARGUMENT" },
                status == 429 ? "You exceeded your current quota, please check your plan and billing details." : $"Fake Gemini says {status}.",
                // Gemini names its wait in google.rpc.RetryInfo (https://ai.google.dev/gemini-api/docs/troubleshooting#error-codes).
                status == 429 ? """
                    [{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-2.5-flash"},"quotaValue":"10"}]},
                     {"@type":"type.googleapis.com/google.rpc.Help","links":[{"description":"Learn more about Gemini API quotas","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},
                     {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]
                    """ : null);
            return;
        }

        JsonObject body;
        try
        {
            body = JsonNode.Parse(text)!.AsObject();
        }
        catch (JsonException)
        {
            await ErrorAsync(http, 400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
            return;
        }
        if (Validate(body, model) is { } problem)
        {
            await ErrorAsync(http, 400, "INVALID_ARGUMENT", problem);
            return;
        }

        var contents = body["contents"]!.AsArray();
        var last = contents[^1]!["parts"]!.AsArray();
        var answeringTool = last.Any(p => p!["functionResponse"] is not null);
        var offersTools = body["tools"] is not null && body["toolConfig"]?["functionCallingConfig"]?["mode"]?.GetValue<string>() != "NONE";
        var usage = new JsonObject
        {
            ["promptTokenCount"] = 30, ["candidatesTokenCount"] = 10, ["thoughtsTokenCount"] = 5, ["cachedContentTokenCount"] = 8, ["totalTokenCount"] = 45,
        };

        if (model.EndsWith("-blocked", StringComparison.Ordinal))
        {
            await WriteAsync(http, stream, [new JsonObject
            {
                ["promptFeedback"] = new JsonObject { ["blockReason"] = "SAFETY" },
                ["usageMetadata"] = new JsonObject { ["promptTokenCount"] = 30, ["totalTokenCount"] = 30 },
                ["modelVersion"] = model,
            }]);
            return;
        }

        JsonObject Chunk(JsonArray parts, string? finish, JsonObject? use) => new()
        {
            ["candidates"] = new JsonArray(new JsonObject
            {
                ["content"] = new JsonObject { ["parts"] = parts, ["role"] = "model" },
                ["finishReason"] = finish,
                ["index"] = 0,
            }),
            ["usageMetadata"] = use,
            ["modelVersion"] = model + "-001",
            ["responseId"] = "resp-fake-1",
        };

        if (model.EndsWith("-malformed", StringComparison.Ordinal))
        {
            await WriteAsync(http, stream, [Chunk([], "MALFORMED_FUNCTION_CALL", usage)]);
            return;
        }
        if (offersTools && !answeringTool)
        {
            var callPart = new JsonObject { ["functionCall"] = new JsonObject { ["name"] = "get_weather", ["args"] = new JsonObject { ["city"] = "Paris" } } };
            if (stream && model.EndsWith("-late-signature", StringComparison.Ordinal))
            {
                // As seen from Gemini 3 streams: the signature follows in a later chunk, on an empty text part.
                await WriteAsync(http, true, [Chunk([callPart], null, null), Chunk([new JsonObject { ["text"] = "", ["thoughtSignature"] = Signature }], "STOP", usage)]);
                return;
            }
            if (model.StartsWith("gemini-3", StringComparison.Ordinal)) callPart["thoughtSignature"] = Signature;
            await WriteAsync(http, stream, [Chunk([new JsonObject { ["text"] = "thinking about it", ["thought"] = true }, callPart], "STOP", usage)]);
            return;
        }

        var answer = answeringTool ? Answer : model.EndsWith("-max", StringComparison.Ordinal) ? "Hello from" : "Hello from Gemini.";
        var finishReason = model.EndsWith("-max", StringComparison.Ordinal) ? "MAX_TOKENS" : "STOP";
        if (!stream)
        {
            await WriteAsync(http, false, [Chunk([new JsonObject { ["text"] = answer }], finishReason, usage)]);
            return;
        }
        // Streamed: text in pieces, usageMetadata cumulative on every chunk, finishReason on the last.
        if (model.EndsWith("-error-midstream", StringComparison.Ordinal))
        {
            http.Response.ContentType = "text/event-stream";
            await http.Response.WriteAsync("data: " + Chunk([new JsonObject { ["text"] = "Hello" }], null, null).ToJsonString() + "\r\n\r\n");
            await http.Response.WriteAsync("data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded. Please try again later.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n");
            return;
        }
        var words = answer.Split(' ');
        var chunks = new List<JsonObject>();
        for (var i = 0; i < words.Length; i++)
        {
            var piece = (i == 0 ? "" : " ") + words[i];
            var last1 = i == words.Length - 1;
            chunks.Add(Chunk([new JsonObject { ["text"] = piece }], last1 ? finishReason : null,
                last1 ? usage : new JsonObject { ["promptTokenCount"] = 30, ["totalTokenCount"] = 30 }));
        }
        await WriteAsync(http, true, chunks);
    }

    /// <summary>batchEmbedContents: every inner request must name models/{the URL's model}; 4-dimensional vectors (or outputDimensionality).</summary>
    private static async Task EmbedAsync(HttpContext http, string model, JsonObject body)
    {
        var requests = body["requests"]?.AsArray() ?? [];
        if (requests.Count == 0 || requests.Any(r => r!["model"]?.GetValue<string>() != "models/" + model || r["content"]?["parts"]?[0]?["text"] is null))
        {
            await ErrorAsync(http, 400, "INVALID_ARGUMENT", "* BatchEmbedContentsRequest.requests: model must match the request's model and content must hold text.");
            return;
        }
        http.Response.ContentType = "application/json; charset=UTF-8";
        await http.Response.WriteAsync(new JsonObject
        {
            ["embeddings"] = new JsonArray([.. requests.Select((r, i) => (JsonNode)new JsonObject
            {
                ["values"] = new JsonArray([.. Enumerable.Range(0, r!["outputDimensionality"]?.GetValue<int>() ?? 4).Select(d => (JsonNode)JsonValue.Create(0.25f * (i + 1) + d))]),
            })]),
        }.ToJsonString());
    }

    private static string? Validate(JsonObject body, string model)
    {
        foreach (var (key, _) in body)
        {
            if (key is not ("contents" or "systemInstruction" or "tools" or "toolConfig" or "generationConfig" or "safetySettings" or "cachedContent"))
                return $"Invalid JSON payload received. Unknown name \"{key}\": Cannot find field.";
        }
        if (body["contents"] is not JsonArray { Count: > 0 } contents) return "* GenerateContentRequest.contents: contents is not specified";
        for (var c = 0; c < contents.Count; c++)
        {
            var content = contents[c]!.AsObject();
            if (content["role"]?.GetValue<string>() is not ("user" or "model")) return $"Please use a valid role: user, model.";
            if (content["parts"] is not JsonArray { Count: > 0 } parts) return $"* GenerateContentRequest.contents[{c}].parts: contents.parts must not be empty.";
            foreach (var part in parts)
            {
                var data = part!.AsObject().Select(p => p.Key).Where(PartFields.Contains).ToList();
                if (data.Count != 1) return $"* GenerateContentRequest.contents[{c}].parts: a part must have exactly one data field, found {data.Count}.";
            }
        }
        if (model.StartsWith("gemini-3", StringComparison.Ordinal))
        {
            // Current turn: everything after the last user content that holds normal content (not functionResponse).
            var start = contents.Select((content, i) => (content, i))
                .LastOrDefault(x => x.content!["role"]!.GetValue<string>() == "user" && x.content["parts"]!.AsArray().Any(p => p!["functionResponse"] is null)).i;
            for (var c = start; c < contents.Count; c++)
            {
                // The first functionCall of each step must carry the signature that came with it.
                var first = contents[c]!["parts"]!.AsArray().FirstOrDefault(p => p!["functionCall"] is not null);
                if (first is not null && first["thoughtSignature"]?.GetValue<string>() != Signature)
                    return $"Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:{first["functionCall"]!["name"]}` , position {c + 1}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.";
            }
        }
        if (body["tools"] is JsonArray tools)
        {
            for (var t = 0; t < tools.Count; t++)
            {
                foreach (var declaration in tools[t]!["functionDeclarations"]?.AsArray() ?? [])
                {
                    if (declaration!["parameters"] is JsonObject parameters && SchemaProblem(parameters, $"tools[{t}].function_declarations[0].parameters") is { } bad) return bad;
                }
            }
        }
        if (body["generationConfig"]?["responseSchema"] is JsonObject responseSchema && SchemaProblem(responseSchema, "generation_config.response_schema") is { } badSchema)
            return badSchema;
        return null;
    }

    private static string? SchemaProblem(JsonObject schema, string at)
    {
        foreach (var (key, value) in schema)
        {
            if (!SchemaFields.Contains(key)) return $"Invalid JSON payload received. Unknown name \"{key}\" at '{at}': Cannot find field.";
            if (key == "properties")
            {
                foreach (var (name, inner) in value!.AsObject())
                    if (inner is JsonObject o && SchemaProblem(o, $"{at}.properties[{name}].value") is { } bad) return bad;
            }
            if (key == "items" && value is JsonObject items && SchemaProblem(items, $"{at}.items") is { } badItems) return badItems;
            if (key == "anyOf")
            {
                foreach (var option in value!.AsArray())
                    if (option is JsonObject o && SchemaProblem(o, $"{at}.any_of") is { } bad) return bad;
            }
        }
        if (schema["type"]?.GetValue<string>() is "ARRAY" or "array" && schema["items"] is null) return $"* {at}.items: missing field.";
        return null;
    }

    private static async Task WriteAsync(HttpContext http, bool stream, List<JsonObject> chunks)
    {
        if (!stream)
        {
            http.Response.ContentType = "application/json; charset=UTF-8";
            await http.Response.WriteAsync(chunks[0].ToJsonString());
            return;
        }
        http.Response.ContentType = "text/event-stream";
        foreach (var chunk in chunks)
        {
            await http.Response.WriteAsync("data: " + chunk.ToJsonString() + "\r\n\r\n");
            await http.Response.Body.FlushAsync();
        }
    }

    private static async Task ErrorAsync(HttpContext http, int status, string statusName, string message, string? details = null)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json; charset=UTF-8";
        var error = new JsonObject { ["code"] = status, ["message"] = message, ["status"] = statusName };
        if (details is not null) error["details"] = JsonNode.Parse(details);
        await http.Response.WriteAsync(new JsonObject { ["error"] = error }.ToJsonString());
    }
}
