using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Errors;
using Gateway.Core.Wire;

namespace Gateway.Api.Endpoints.Anthropic;

/// <summary>
/// An Anthropic Messages request (https://docs.anthropic.com/en/api/messages) → the pipeline's canonical request (OpenAI's chat
/// request), which the chat parser then validates as for the OpenAI door:
/// <list type="bullet">
/// <item><c>system</c> (a string or text blocks) → a system message; <c>max_tokens</c>, <c>temperature</c>, <c>top_p</c>,
/// <c>stream</c> as they are; <c>stop_sequences</c> → <c>stop</c>; <c>metadata.user_id</c> → <c>user</c>.</item>
/// <item>A <c>system</c> message among the messages → a system message at that place.</item>
/// <item>Content blocks: <c>text</c> → text parts; <c>image</c> (base64 or URL) → <c>image_url</c> parts; a text
/// <c>document</c> → a text part; <c>tool_use</c> → the assistant's <c>tool_calls</c>; <c>tool_result</c> → a <c>tool</c>
/// message (before the turn's other content); <c>thinking</c>/<c>redacted_thinking</c> are dropped (no chat API takes them back).</item>
/// <item>Custom tools → function tools; <c>tool_choice</c> auto/any/tool/none → auto/required/function/none;
/// <c>disable_parallel_tool_use</c> → <c>parallel_tool_calls: false</c>.</item>
/// </list>
/// The translation decides routing, limits, the screen, the cache and the budget for every request; an Anthropic upstream is sent
/// the client's own request (<see cref="NativeRequest"/>), so nothing is lost there. Hints other APIs have no place for
/// (<c>cache_control</c>, <c>thinking</c>, <c>top_k</c>) are left out of the translation; what only Anthropic can do (server tools,
/// documents that are not plain text, file images) is listed as untranslated, and a candidate of another protocol refuses the
/// request with a 400 naming it.
/// </summary>
internal static class MessagesRequest
{
    /// <summary>
    /// Whether a document Anthropic fetches itself (by URL or file id) sits anywhere in the messages, a tool result's content
    /// included: it has no size here, so a key with a hard cap may not send one.
    /// </summary>
    private static bool DocumentByReference(JsonNode? node) => node switch
    {
        JsonObject block when Str(block, "type") == "document" && block["source"] is JsonObject source && Str(source, "type") is "url" or "file" => true,
        JsonObject other => other.Any(p => DocumentByReference(p.Value)),
        JsonArray items => items.Any(DocumentByReference),
        _ => false,
    };

    /// <returns>The canonical request's JSON and the client's own request (passed through to Anthropic upstreams), or why it
    /// cannot be translated.</returns>
    public static (byte[]? Canonical, NativeRequest? Native, GatewayError? Failure) Translate(ReadOnlySpan<byte> body, string? beta = null)
    {
        var (read, invalid) = RequestJson.ReadObject(body);
        if (invalid is not null) return (null, null, invalid);
        var request = read!;
        try
        {
            var untranslated = new List<string>();
            var canonical = JsonSerializer.SerializeToUtf8Bytes(Canonical(request, untranslated), GatewayJsonContext.Wire.JsonObject);
            return (canonical, new NativeRequest(NativeRequest.Anthropic, request, beta, untranslated,
                DocumentByReference(request["messages"]) ? ["a document by URL or file id"] : null), null);
        }
        catch (TranslationException ex)
        {
            return (null, null, GatewayError.BadRequest(ex.Message, ex.Param, "invalid_request_error"));
        }
    }

    private static JsonObject Canonical(JsonObject request, List<string> untranslated)
    {
        var model = Str(request, "model") ?? throw new TranslationException("model: Field required", "model");
        if (request["max_tokens"] is not JsonValue maxTokens || !maxTokens.TryGetValue<int>(out var max))
            throw new TranslationException("max_tokens: Field required (an integer)", "max_tokens");
        if (request["messages"] is not JsonArray messages) throw new TranslationException("messages: Field required (an array)", "messages");

        var canonical = new JsonObject { ["model"] = model, ["max_tokens"] = max };
        var chat = new JsonArray();
        if (request["system"] is { } system) chat.Add((JsonNode)new JsonObject { ["role"] = "system", ["content"] = TextOf(system, "system") });
        for (var i = 0; i < messages.Count; i++)
        {
            if (messages[i] is not JsonObject message) throw new TranslationException($"messages.{i}: must be an object", "messages");
            foreach (var translated in Message(message, i, untranslated)) chat.Add((JsonNode)translated);
        }
        canonical["messages"] = chat;
        Copy(request, canonical, "temperature");
        Copy(request, canonical, "top_p");
        if (request["stop_sequences"] is JsonArray stop) canonical["stop"] = stop.DeepClone();
        if (request["stream"] is JsonValue stream && stream.TryGetValue<bool>(out var streaming) && streaming)
        {
            canonical["stream"] = true;
            canonical["stream_options"] = new JsonObject { ["include_usage"] = true }; // message_delta reports usage
        }
        if (request["metadata"] is JsonObject metadata && Str(metadata, "user_id") is { Length: > 0 } user) canonical["user"] = user;
        if (request["tools"] is JsonArray tools && Tools(tools, untranslated) is { Count: > 0 } functions) canonical["tools"] = functions;
        if (request["tool_choice"] is JsonObject choice) ToolChoice(choice, canonical);
        return canonical;
    }

    private static IEnumerable<JsonObject> Message(JsonObject message, int at, List<string> untranslated)
    {
        var role = Str(message, "role");
        if (role == "system" && message["content"] is { } instructions)
        {
            // A system message among the messages (as Claude Code sends its environment) applies from there on: OpenAI's chat
            // takes system messages at any position too.
            yield return new JsonObject { ["role"] = "system", ["content"] = TextOf(instructions, $"messages.{at}.content") };
            yield break;
        }
        if (role is not ("user" or "assistant")) throw new TranslationException($"messages.{at}.role: must be 'user', 'assistant' or 'system'", "messages");
        if (message["content"] is JsonValue text && text.TryGetValue<string>(out var plain))
        {
            yield return new JsonObject { ["role"] = role, ["content"] = plain };
            yield break;
        }
        if (message["content"] is not JsonArray blocks) throw new TranslationException($"messages.{at}.content: Field required", "messages");
        var parts = new JsonArray();
        var toolCalls = new JsonArray();
        foreach (var node in blocks)
        {
            if (node is not JsonObject block) throw new TranslationException($"messages.{at}.content: blocks must be objects", "messages");
            switch (Str(block, "type"))
            {
                case "text":
                    parts.Add((JsonNode)new JsonObject { ["type"] = "text", ["text"] = Str(block, "text") ?? "" });
                    break;
                case "image" when ImageUrl(block) is { } url:
                    parts.Add((JsonNode)new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = url } });
                    break;
                case "document" when block["source"] is JsonObject { } source && Str(source, "type") == "text":
                    parts.Add((JsonNode)new JsonObject { ["type"] = "text", ["text"] = Str(source, "data") ?? "" });
                    break;
                case "tool_use" when role == "assistant":
                    toolCalls.Add((JsonNode)new JsonObject
                    {
                        ["id"] = Str(block, "id"),
                        ["type"] = "function",
                        ["function"] = new JsonObject
                        {
                            ["name"] = Str(block, "name"),
                            ["arguments"] = (block["input"] ?? new JsonObject()).ToJsonString(),
                        },
                    });
                    break;
                case "tool_result" when role == "user":
                    // Tool results answer the previous turn's calls: they come before the turn's own text, as OpenAI orders them.
                    yield return new JsonObject
                    {
                        ["role"] = "tool",
                        ["tool_call_id"] = Str(block, "tool_use_id"),
                        ["content"] = block["content"] is { } content ? ToolResultText(content, at, untranslated) : "",
                    };
                    break;
                case "thinking" or "redacted_thinking":
                    break; // no chat API takes reasoning back as input
                case var type:
                    untranslated.Add($"messages.{at}: a '{type}' block{(type == "image" ? " of that source type" : type == "document" ? " that is not plain text" : "")}");
                    break;
            }
        }
        if (parts.Count == 0 && toolCalls.Count == 0) yield break;
        var translated = new JsonObject { ["role"] = role };
        translated["content"] = parts.Count == 0 ? null
            : parts.All(p => Str(p!.AsObject(), "type") == "text") ? string.Concat(parts.Select(p => Str(p!.AsObject(), "text"))) : parts;
        if (toolCalls.Count > 0) translated["tool_calls"] = toolCalls;
        yield return translated;
    }

    // An image as a URL a chat API takes; null for a source it cannot (an uploaded file's id).
    private static string? ImageUrl(JsonObject block) => block["source"] is not JsonObject source ? null : Str(source, "type") switch
    {
        "base64" => $"data:{Str(source, "media_type")};base64,{Str(source, "data")}",
        "url" => Str(source, "url"),
        _ => null,
    };

    private static JsonArray Tools(JsonArray tools, List<string> untranslated)
    {
        var functions = new JsonArray();
        foreach (var node in tools)
        {
            if (node is not JsonObject tool) continue;
            if (Str(tool, "type") is { } type && type != "custom")
            {
                untranslated.Add($"the server tool '{type}'"); // Anthropic runs it; no other API can
                continue;
            }
            var function = new JsonObject { ["name"] = Str(tool, "name") };
            if (Str(tool, "description") is { } description) function["description"] = description;
            function["parameters"] = tool["input_schema"]?.DeepClone() ?? new JsonObject { ["type"] = "object" };
            functions.Add((JsonNode)new JsonObject { ["type"] = "function", ["function"] = function });
        }
        return functions;
    }

    private static void ToolChoice(JsonObject choice, JsonObject canonical)
    {
        canonical["tool_choice"] = Str(choice, "type") switch
        {
            "any" => "required",
            "none" => "none",
            "tool" => new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = Str(choice, "name") } },
            _ => "auto",
        };
        if (choice["disable_parallel_tool_use"] is JsonValue single && single.TryGetValue<bool>(out var off) && off) canonical["parallel_tool_calls"] = false;
    }

    // A tool result's text; an image or document in it is only for an Anthropic model (listed as untranslated).
    private static string ToolResultText(JsonNode content, int at, List<string> untranslated)
    {
        if (content is JsonValue value && value.TryGetValue<string>(out var text)) return text;
        if (content is not JsonArray blocks) throw new TranslationException($"messages.{at}.content: a tool_result's content must be a string or blocks", "messages");
        var texts = new List<string>();
        foreach (var block in blocks.OfType<JsonObject>())
        {
            if (Str(block, "type") == "text") texts.Add(Str(block, "text") ?? "");
            else untranslated.Add($"messages.{at}: a '{Str(block, "type")}' block in a tool_result");
        }
        return string.Join("\n\n", texts);
    }

    // A string, or an array of text blocks (their cache_control hints dropped), as one text.
    private static string TextOf(JsonNode node, string param)
    {
        if (node is JsonValue value && value.TryGetValue<string>(out var text)) return text;
        if (node is not JsonArray blocks) throw new TranslationException($"{param}: must be a string or an array of text blocks", param);
        return string.Join("\n\n", blocks.Select(b => b is JsonObject block && Str(block, "type") == "text"
            ? Str(block, "text") ?? ""
            : throw new TranslationException($"{param}: only text blocks are supported here by this gateway's translation", param)));
    }

    private static void Copy(JsonObject from, JsonObject to, string name)
    {
        if (from[name] is { } value) to[name] = value.DeepClone();
    }

    private static string? Str(JsonObject node, string name) =>
        node[name] is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;

    private sealed class TranslationException(string message, string param) : Exception(message)
    {
        public string Param { get; } = param;
    }
}
