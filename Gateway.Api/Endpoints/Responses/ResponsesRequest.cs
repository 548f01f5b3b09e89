using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Errors;
using Gateway.Core.Wire;

namespace Gateway.Api.Endpoints.Responses;

/// <summary>
/// An OpenAI Responses request (https://platform.openai.com/docs/api-reference/responses/create) → the pipeline's canonical
/// request (OpenAI's chat request), which the chat parser then validates as for the chat door:
/// <list type="bullet">
/// <item><c>instructions</c> → a first system message (not carried into later turns, as OpenAI does not); <c>input</c> as a string →
/// one user message.</item>
/// <item>Input items: messages (roles user, system, developer, assistant; parts <c>input_text</c>/<c>output_text</c> → text,
/// <c>input_image</c> by URL → <c>image_url</c>, <c>refusal</c> → text) as they are; <c>function_call</c> → the assistant's
/// <c>tool_calls</c> (joined to the assistant message before it); <c>function_call_output</c> → a <c>tool</c> message;
/// <c>reasoning</c> items are dropped (no chat API takes reasoning back).</item>
/// <item>Function tools → chat function tools; <c>tool_choice</c> as it is, a named function in the chat form;
/// <c>text.format</c> → <c>response_format</c> (<c>json_schema</c>'s flat fields nested under <c>json_schema</c>);
/// <c>max_output_tokens</c> → <c>max_tokens</c>; <c>reasoning.effort</c> → <c>reasoning_effort</c>; <c>metadata</c>,
/// <c>temperature</c>, <c>top_p</c>, <c>user</c>, <c>parallel_tool_calls</c> as they are.</item>
/// </list>
/// The client's own body goes beside the translation (<see cref="NativeRequest"/>, with a stored conversation it continues put in
/// front of its input), for a provider that serves the Responses API. What the translation cannot carry (built-in tools, custom and
/// namespace tools, files, other input items, <c>conversation</c>, <c>prompt</c>) is listed as untranslated: that provider takes it,
/// any other answers a 400 naming it. <c>background</c> is a 400 everywhere (the gateway keeps no background responses).
/// </summary>
internal static class ResponsesRequest
{
    /// <summary>A parsed Responses request: the body and the fields the front door acts on.</summary>
    public sealed record Parsed(JsonObject Body, bool Stream, bool Store, string? PreviousResponseId);

    /// <summary>
    /// The canonical request; the conversation (earlier turns and this input, as Responses input items, without instructions) to
    /// store; and the client's request as a provider that serves the Responses API is sent it.
    /// </summary>
    public sealed record Translated(byte[] Canonical, JsonArray Conversation, NativeRequest Native);

    /// <summary>Reads the body: a JSON object with a model and an input.</summary>
    public static (Parsed? Value, GatewayError? Failure) Read(ReadOnlySpan<byte> body)
    {
        var (read, invalid) = RequestJson.ReadObject(body);
        if (invalid is not null) return (null, invalid);
        var request = read!;
        if (request["previous_response_id"] is { } previous && (previous is not JsonValue value || !value.TryGetValue<string>(out _)))
            return (null, GatewayError.BadRequest("previous_response_id: must be a string", "previous_response_id", "invalid_type"));
        return (new Parsed(request, Bool(request, "stream") ?? false, Bool(request, "store") ?? true, Str(request, "previous_response_id")), null);
    }

    /// <summary>The canonical request for <paramref name="request"/>, continuing <paramref name="previous"/> (a stored conversation) if given.</summary>
    public static (Translated? Value, GatewayError? Failure) Translate(JsonObject request, JsonArray? previous)
    {
        try
        {
            var left = new Left();
            var (canonical, conversation) = Canonical(request, previous, left);
            // The body a Responses upstream is sent: the stored conversation is the gateway's, so it goes in as input.
            var native = request.DeepClone().AsObject();
            if (native.Remove("previous_response_id")) native["input"] = conversation.DeepClone();
            return (new Translated(JsonSerializer.SerializeToUtf8Bytes(canonical, GatewayJsonContext.Wire.JsonObject), conversation,
                new NativeRequest(NativeRequest.OpenAIResponses, native, null, left.Untranslated.Distinct().ToList(), left.Unbounded.Distinct().ToList())), null);
        }
        catch (TranslationException ex)
        {
            return (null, GatewayError.BadRequest(ex.Message, ex.Param, ex.Code));
        }
    }

    /// <summary>
    /// A response's output items appended to <paramref name="conversation"/> as the next turn's input: as the upstream wrote them
    /// when it was passed through (<paramref name="passedThrough"/>: their ids name items it may hold), else without the ids the
    /// gateway made up.
    /// </summary>
    public static void AppendOutput(JsonArray conversation, JsonArray output, bool passedThrough)
    {
        foreach (var node in output)
        {
            if (node is not JsonObject item) continue;
            var copy = item.DeepClone().AsObject();
            if (!passedThrough) copy.Remove("id");
            conversation.Add((JsonNode)copy);
        }
    }

    private static (JsonObject Canonical, JsonArray Conversation) Canonical(JsonObject request, JsonArray? previous, Left left)
    {
        var model = Str(request, "model") ?? throw new TranslationException("model: Field required", "model", "missing_required_parameter");
        // OpenAI's own conversations belong to the organization behind the gateway, not to a key: never reached through it.
        if (request["conversation"] is { } conversationId && conversationId.GetValueKind() != JsonValueKind.Null)
            throw new TranslationException("conversation: not supported by this gateway (it keeps conversations per key as stored responses: use previous_response_id)", "conversation");
        if (request["prompt"] is { } prompt && prompt.GetValueKind() != JsonValueKind.Null)
        {
            left.Untranslated.Add("'prompt'");
            left.Unbounded.Add("a prompt template");
        }
        if (Bool(request, "background") == true) throw new TranslationException("background: background responses are not supported by this gateway", "background");

        var conversation = previous is null ? new JsonArray() : (JsonArray)previous.DeepClone();
        switch (request["input"])
        {
            case JsonValue text when text.TryGetValue<string>(out var plain):
                conversation.Add((JsonNode)new JsonObject { ["type"] = "message", ["role"] = "user", ["content"] = plain });
                break;
            case JsonArray items:
                for (var i = 0; i < items.Count; i++)
                {
                    if (items[i] is not JsonObject item) throw new TranslationException($"input[{i}]: must be an object", "input", "invalid_type");
                    conversation.Add(item.DeepClone());
                }
                break;
            case null when previous is not null:
                break;
            default:
                throw new TranslationException("input: Field required (a string or an array of input items)", "input", "missing_required_parameter");
        }

        var messages = new JsonArray();
        if (Str(request, "instructions") is { Length: > 0 } instructions) messages.Add((JsonNode)new JsonObject { ["role"] = "system", ["content"] = instructions });
        var first = conversation.Count - (request["input"] is JsonArray input ? input.Count : request["input"] is JsonValue ? 1 : 0);
        for (var i = 0; i < conversation.Count; i++)
            Item(conversation[i]!.AsObject(), i - first, messages, left); // input[n] in errors: the client's own items

        var canonical = new JsonObject { ["model"] = model, ["messages"] = messages };
        if (request["max_output_tokens"] is JsonValue max && max.GetValueKind() != JsonValueKind.Null)
            canonical["max_tokens"] = max.TryGetValue<int>(out var limit) ? limit
                : throw new TranslationException("max_output_tokens: must be an integer", "max_output_tokens", "invalid_type");
        foreach (var name in (string[])["temperature", "top_p", "user", "parallel_tool_calls", "metadata", "prompt_cache_key", "safety_identifier", "service_tier"])
            if (request[name] is { } value && value.GetValueKind() != JsonValueKind.Null) canonical[name] = value.DeepClone();
        if (request["reasoning"] is JsonObject reasoning && Str(reasoning, "effort") is { } effort) canonical["reasoning_effort"] = effort;
        if (request["text"] is JsonObject format) Text(format, canonical, left);
        if (request["tools"] is JsonArray tools && Tools(tools, left) is { Count: > 0 } functions) canonical["tools"] = functions;
        if (request["tool_choice"] is { } choice && choice.GetValueKind() != JsonValueKind.Null && ToolChoice(choice, left) is { } chosen)
            canonical["tool_choice"] = chosen;
        if (Bool(request, "stream") == true)
        {
            canonical["stream"] = true;
            canonical["stream_options"] = new JsonObject { ["include_usage"] = true }; // response.completed reports usage
        }
        return (canonical, conversation);
    }

    // One input item, appended to the canonical messages.
    private static void Item(JsonObject item, int at, JsonArray chat, Left left)
    {
        var type = Str(item, "type") ?? (item["role"] is not null ? "message" : null);
        switch (type)
        {
            case "message":
                Message(item, at, chat, left);
                break;
            case "function_call":
                var call = new JsonObject
                {
                    ["id"] = Str(item, "call_id") ?? throw new TranslationException($"input[{at}].call_id: Field required", "input", "missing_required_parameter"),
                    ["type"] = "function",
                    ["function"] = new JsonObject { ["name"] = Str(item, "name"), ["arguments"] = Str(item, "arguments") ?? "{}" },
                };
                // The calls of one turn belong to the assistant message that said them (the turn's text, or a message of calls only).
                if (chat.Count > 0 && chat[^1] is JsonObject last && Str(last, "role") == "assistant")
                {
                    if (last["tool_calls"] is not JsonArray calls) last["tool_calls"] = calls = [];
                    calls.Add((JsonNode)call);
                }
                else
                {
                    chat.Add((JsonNode)new JsonObject { ["role"] = "assistant", ["content"] = null, ["tool_calls"] = new JsonArray(call) });
                }
                break;
            case "function_call_output":
                if (item["output"] is JsonArray outputParts)
                {
                    foreach (var part in outputParts.OfType<JsonObject>()) ByReference(part, at, left);
                    if (outputParts.OfType<JsonObject>().Any(p => Str(p, "type") is not ("input_text" or "output_text" or "text")))
                        left.Untranslated.Add("tool outputs with images or files"); // a chat tool message holds text only
                }
                chat.Add((JsonNode)new JsonObject
                {
                    ["role"] = "tool",
                    ["tool_call_id"] = Str(item, "call_id") ?? throw new TranslationException($"input[{at}].call_id: Field required", "input", "missing_required_parameter"),
                    ["content"] = item["output"] switch
                    {
                        JsonValue output when output.TryGetValue<string>(out var text) => text,
                        JsonArray parts => string.Join("\n", parts.OfType<JsonObject>().Select(p => Str(p, "text")).OfType<string>()),
                        _ => "",
                    },
                });
                break;
            case "reasoning":
                break; // no chat API takes reasoning back as input
            case null:
                throw new TranslationException($"input[{at}].type: Field required", "input", "missing_required_parameter");
            case "item_reference":
                // Items stored at the upstream belong to its organization, not to a key.
                throw new TranslationException($"input[{at}]: item references are not supported by this gateway; send the item itself, or use previous_response_id", "input");
            default:
                left.Untranslated.Add($"'{type}' input items"); // built-in tool calls and their outputs, custom tool calls
                break;
        }
    }

    private static void Message(JsonObject item, int at, JsonArray chat, Left left)
    {
        var role = Str(item, "role");
        if (role is not ("user" or "system" or "developer" or "assistant"))
            throw new TranslationException($"input[{at}].role: must be 'user', 'system', 'developer' or 'assistant'", "input", "invalid_value");
        JsonNode? content = item["content"] switch
        {
            JsonValue text when text.TryGetValue<string>(out var plain) => plain,
            JsonArray parts => Parts(parts, at, left),
            _ => throw new TranslationException($"input[{at}].content: Field required", "input", "missing_required_parameter"),
        };
        chat.Add((JsonNode)new JsonObject { ["role"] = role, ["content"] = content });
    }

    // Content parts → chat parts; text only → one string (what every chat API takes).
    private static JsonNode Parts(JsonArray parts, int at, Left left)
    {
        var chat = new JsonArray();
        foreach (var node in parts)
        {
            if (node is not JsonObject part) throw new TranslationException($"input[{at}].content: parts must be objects", "input", "invalid_type");
            ByReference(part, at, left);
            switch (Str(part, "type"))
            {
                case "input_text" or "output_text" or "text":
                    chat.Add((JsonNode)new JsonObject { ["type"] = "text", ["text"] = Str(part, "text") ?? "" });
                    break;
                case "refusal":
                    chat.Add((JsonNode)new JsonObject { ["type"] = "text", ["text"] = Str(part, "refusal") ?? "" });
                    break;
                case "input_image" when Str(part, "image_url") is { } url:
                    var image = new JsonObject { ["url"] = url };
                    if (Str(part, "detail") is { } detail) image["detail"] = detail;
                    chat.Add((JsonNode)new JsonObject { ["type"] = "image_url", ["image_url"] = image });
                    break;
                case "image_url" when part["image_url"] is JsonObject:
                    chat.Add(part.DeepClone()); // a chat part, as conversations stored by earlier versions hold them
                    break;
                case "input_image":
                    left.Untranslated.Add("'input_image' parts without image_url");
                    break;
                case "input_file":
                    left.Untranslated.Add("'input_file' content parts");
                    break;
                case null:
                    throw new TranslationException($"input[{at}].content: a part's type is required", "input", "missing_required_parameter");
                case var type:
                    left.Untranslated.Add($"'{type}' content parts"); // input_file, input_audio
                    break;
            }
        }
        return chat.All(p => Str(p!.AsObject(), "type") == "text")
            ? string.Join("", chat.Select(p => Str(p!.AsObject(), "text")))
            : chat;
    }

    // A part that names content the upstream holds or fetches, wherever it sits (a message's content, a tool's output): files by
    // file_id belong to the upstream's organization, not to a key (and the gateway has no files API): refused; a file by URL has no
    // size here, so a key with a hard cap may not send it.
    private static void ByReference(JsonObject part, int at, Left left)
    {
        if (Str(part, "type") is not ("input_image" or "input_file")) return;
        if (part["file_id"] is not null)
            throw new TranslationException($"input[{at}]: files by file_id are not supported by this gateway; send the content itself (a data: URL or file_data)", "input");
        if (Str(part, "type") == "input_file" && part["file_url"] is not null) left.Unbounded.Add("a file by URL");
    }

    // Function tools in the chat form; the others (built-in, custom, namespace) are untranslated.
    private static JsonArray Tools(JsonArray tools, Left left)
    {
        var functions = new JsonArray();
        for (var i = 0; i < tools.Count; i++)
        {
            if (tools[i] is not JsonObject tool) throw new TranslationException($"tools[{i}]: must be an object", "tools", "invalid_type");
            var type = Str(tool, "type");
            if (type != "function")
            {
                left.Untranslated.Add($"the tool '{type}'");
                continue;
            }
            var function = new JsonObject { ["name"] = Str(tool, "name") };
            if (Str(tool, "description") is { } description) function["description"] = description;
            if (tool["parameters"] is JsonObject parameters) function["parameters"] = parameters.DeepClone();
            if (Bool(tool, "strict") is { } strict) function["strict"] = strict;
            functions.Add((JsonNode)new JsonObject { ["type"] = "function", ["function"] = function });
        }
        return functions;
    }

    // The chat APIs choose only 'auto', 'none', 'required' or a named function; another choice is untranslated (null).
    private static JsonNode? ToolChoice(JsonNode choice, Left left)
    {
        if (choice is JsonValue mode && mode.TryGetValue<string>(out var text)) return text;
        if (choice is JsonObject named && Str(named, "type") == "function" && Str(named, "name") is { } name)
            return new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = name } };
        left.Untranslated.Add($"tool_choice '{(choice is JsonObject other ? Str(other, "type") : null)}'");
        return null;
    }

    private static void Text(JsonObject text, JsonObject canonical, Left left)
    {
        if (text["format"] is JsonObject format)
        {
            switch (Str(format, "type"))
            {
                case "text" or null:
                    break;
                case "json_object":
                    canonical["response_format"] = new JsonObject { ["type"] = "json_object" };
                    break;
                case "json_schema":
                    var schema = new JsonObject { ["name"] = Str(format, "name") ?? "response" };
                    if (Str(format, "description") is { } description) schema["description"] = description;
                    if (format["schema"] is { } body) schema["schema"] = body.DeepClone();
                    if (Bool(format, "strict") is { } strict) schema["strict"] = strict;
                    canonical["response_format"] = new JsonObject { ["type"] = "json_schema", ["json_schema"] = schema };
                    break;
                case var type:
                    left.Untranslated.Add($"text.format '{type}'");
                    break;
            }
        }
        if (Str(text, "verbosity") is { } verbosity) canonical["verbosity"] = verbosity;
    }

    private static string? Str(JsonObject node, string name) =>
        node[name] is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;

    private static bool? Bool(JsonObject node, string name) =>
        node[name] is JsonValue value && value.TryGetValue<bool>(out var flag) ? flag : null;

    // What the translation leaves to an upstream that takes the body itself, and what of that the body only names.
    private sealed class Left
    {
        public readonly List<string> Untranslated = [];
        public readonly List<string> Unbounded = [];
    }

    private sealed class TranslationException(string message, string param, string? code = null) : Exception(message)
    {
        public string Param { get; } = param;

        public string Code { get; } = code ?? "unsupported_parameter";
    }
}
