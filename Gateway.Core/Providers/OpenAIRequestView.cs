using System.Text.Json;
using Gateway.Core.Errors;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers;

/// <summary>A part of a message's content: text, or an image by URL or base64 data.</summary>
public sealed record ContentPart(string? Text, string? ImageUrl, string? MediaType, string? Base64Data)
{
    public bool IsText => Text is not null;
}

/// <summary>A tool call an assistant message made: its id, function name and JSON arguments.</summary>
public sealed record ToolCallView(string Id, string Name, JsonElement Arguments);

/// <summary>A function tool the client offers: name, description and JSON-schema parameters.</summary>
public sealed record ToolView(string Name, string? Description, JsonElement? Parameters);

/// <summary>
/// Reads an OpenAI request in the terms native adapters translate from (content parts, tool calls,
/// tools, tool choice, stop). A request the target cannot express raises <see cref="RequestMappingException"/>.
/// </summary>
public static class OpenAIRequestView
{
    public static IReadOnlyList<ContentPart> Parts(ChatMessage message)
    {
        if (message.Content is not { } content || content.ValueKind == JsonValueKind.Null) return [];
        if (content.ValueKind == JsonValueKind.String) return [new ContentPart(content.GetString() ?? "", null, null, null)];
        if (content.ValueKind != JsonValueKind.Array) throw Invalid("messages.content", "must be a string or an array of content parts");

        var parts = new List<ContentPart>();
        foreach (var part in content.EnumerateArray())
        {
            var type = part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type", out var t) ? t.GetString() : null;
            switch (type)
            {
                case "text":
                    parts.Add(new ContentPart(Str(part, "text") ?? "", null, null, null));
                    break;
                case "image_url":
                    var url = part.TryGetProperty("image_url", out var image) && image.ValueKind == JsonValueKind.Object ? Str(image, "url") : null;
                    if (string.IsNullOrEmpty(url)) throw Invalid("messages.content", "an image_url part needs image_url.url");
                    parts.Add(Image(url));
                    break;
                default:
                    throw Invalid("messages.content", $"content part type '{type}' is not supported by this provider");
            }
        }
        return parts;
    }

    /// <summary>An image part from a URL, splitting <c>data:image/png;base64,…</c> URLs into media type and data.</summary>
    public static ContentPart Image(string url)
    {
        if (!url.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
        {
            return Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
                ? new ContentPart(null, url, null, null)
                : throw Invalid("messages.content", "an image_url must be an http(s) URL or a base64 data URL");
        }
        var comma = url.IndexOf(',', StringComparison.Ordinal);
        var header = comma > 5 ? url[5..comma] : "";
        if (comma < 0 || !header.EndsWith(";base64", StringComparison.OrdinalIgnoreCase))
            throw Invalid("messages.content", "image data URLs must be base64 ('data:image/png;base64,…')");
        var mediaType = header[..^7].ToLowerInvariant() switch { "image/jpg" => "image/jpeg", var t => t };
        return new ContentPart(null, null, mediaType, url[(comma + 1)..]);
    }

    /// <summary>The text of a message (tool results, system prompts): strings and text parts only.</summary>
    public static string Text(ChatMessage message) =>
        string.Join("\n", Parts(message).Where(p => p.IsText).Select(p => p.Text));

    public static IReadOnlyList<ToolCallView> ToolCalls(ChatMessage message)
    {
        if (message.ToolCalls is not { ValueKind: JsonValueKind.Array } calls) return [];
        var result = new List<ToolCallView>();
        foreach (var call in calls.EnumerateArray())
        {
            var function = call.TryGetProperty("function", out var f) && f.ValueKind == JsonValueKind.Object ? f : default;
            var id = Str(call, "id");
            var name = function.ValueKind == JsonValueKind.Object ? Str(function, "name") : null;
            if (id is null || name is null) throw Invalid("messages.tool_calls", "each tool call needs an id and function.name");
            var arguments = Str(function, "arguments");
            result.Add(new ToolCallView(id, name, ParseArguments(arguments)));
        }
        return result;
    }

    // OpenAI sends arguments as a JSON string; native APIs want the object.
    private static JsonElement ParseArguments(string? arguments)
    {
        if (string.IsNullOrWhiteSpace(arguments)) return JsonDocument.Parse("{}").RootElement.Clone();
        try
        {
            using var doc = JsonDocument.Parse(arguments);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Invalid("messages.tool_calls", "function.arguments must be a JSON object");
            return doc.RootElement.Clone();
        }
        catch (JsonException)
        {
            throw Invalid("messages.tool_calls", "function.arguments is not valid JSON");
        }
    }

    public static IReadOnlyList<ToolView> Tools(ChatCompletionRequest request)
    {
        if (request.Tools is not { ValueKind: JsonValueKind.Array } tools) return [];
        var result = new List<ToolView>();
        foreach (var tool in tools.EnumerateArray())
        {
            if (tool.ValueKind != JsonValueKind.Object || Str(tool, "type") != "function"
                || !tool.TryGetProperty("function", out var f) || f.ValueKind != JsonValueKind.Object || Str(f, "name") is not { } name)
                throw Invalid("tools", "only function tools with a name are supported by this provider");
            result.Add(new ToolView(name, Str(f, "description"),
                f.TryGetProperty("parameters", out var p) && p.ValueKind == JsonValueKind.Object ? p : null));
        }
        return result;
    }

    /// <summary>"auto", "none", "required", or the forced function's name (Kind "function"); null when not sent.</summary>
    public static (string Kind, string? Function)? ToolChoice(ChatCompletionRequest request)
    {
        if (request.ToolChoice is not { } choice || choice.ValueKind == JsonValueKind.Null) return null;
        if (choice.ValueKind == JsonValueKind.String)
        {
            var value = choice.GetString();
            return value is "auto" or "none" or "required" ? (value, null) : throw Invalid("tool_choice", "must be 'auto', 'none', 'required' or a function");
        }
        if (choice.ValueKind == JsonValueKind.Object && choice.TryGetProperty("function", out var f) && Str(f, "name") is { } name)
            return ("function", name);
        throw Invalid("tool_choice", "must be 'auto', 'none', 'required' or {\"type\":\"function\",\"function\":{\"name\":…}}");
    }

    public static IReadOnlyList<string> Stop(ChatCompletionRequest request) => request.Stop switch
    {
        null => [],
        { ValueKind: JsonValueKind.Null } => [],
        { ValueKind: JsonValueKind.String } s => [s.GetString()!],
        { ValueKind: JsonValueKind.Array } a => [.. a.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()! : throw Invalid("stop", "must be a string or an array of strings"))],
        _ => throw Invalid("stop", "must be a string or an array of strings"),
    };

    /// <summary>"text", "json_object" or "json_schema" with its schema; null when not sent.</summary>
    public static (string Type, JsonElement? Schema, string? Name)? ResponseFormat(ChatCompletionRequest request)
    {
        if (request.ResponseFormat is not { ValueKind: JsonValueKind.Object } format) return null;
        var type = Str(format, "type");
        if (type == "json_schema")
        {
            if (!format.TryGetProperty("json_schema", out var js) || js.ValueKind != JsonValueKind.Object
                || !js.TryGetProperty("schema", out var schema) || schema.ValueKind != JsonValueKind.Object)
                throw Invalid("response_format", "json_schema needs json_schema.schema");
            return (type, schema, Str(js, "name"));
        }
        return type is "text" or "json_object" ? (type, null, null) : throw Invalid("response_format", $"type '{type}' is not supported");
    }

    public static int? MaxTokens(ChatCompletionRequest request) => request.MaxCompletionTokens ?? request.MaxTokens;

    /// <summary>JSON text without insignificant whitespace, as OpenAI writes tool-call arguments.</summary>
    public static string Compact(JsonElement element)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            element.WriteTo(writer);
        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    public static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static RequestMappingException Invalid(string param, string problem) =>
        new(GatewayError.BadRequest($"Invalid '{param}': {problem}.", param, "invalid_value"));
}

/// <summary>The client's request cannot be expressed for the target provider: a 400 for the caller.</summary>
public sealed class RequestMappingException(GatewayError error) : Exception(error.Message)
{
    public GatewayError Error { get; } = error;

    public UpstreamFailure ToFailure(string provider) =>
        new(UpstreamFailureKind.CallerError, provider, Error.Message, 400, Error);
}
