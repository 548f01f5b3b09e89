using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gateway.Core.Wire;

/// <summary>
/// OpenAI's chat-completions request. The fields the gateway reads are typed; every other field
/// survives in <see cref="Extra"/> and is passed on to OpenAI-compatible upstreams untouched.
/// </summary>
public sealed class ChatCompletionRequest
{
    [JsonPropertyName("model")] public string? Model { get; set; }
    [JsonPropertyName("messages")] public List<ChatMessage>? Messages { get; set; }
    [JsonPropertyName("stream")] public bool? Stream { get; set; }
    [JsonPropertyName("stream_options")] public StreamOptions? StreamOptions { get; set; }
    [JsonPropertyName("user")] public string? User { get; set; }
    [JsonPropertyName("max_tokens")] public int? MaxTokens { get; set; }
    [JsonPropertyName("max_completion_tokens")] public int? MaxCompletionTokens { get; set; }
    [JsonPropertyName("temperature")] public double? Temperature { get; set; }
    [JsonPropertyName("top_p")] public double? TopP { get; set; }
    [JsonPropertyName("n")] public int? N { get; set; }
    /// <summary>A string or an array of up to 4 strings.</summary>
    [JsonPropertyName("stop")] public JsonElement? Stop { get; set; }
    [JsonPropertyName("tools")] public JsonElement? Tools { get; set; }
    /// <summary>"none", "auto", "required" or {"type":"function","function":{"name":…}}.</summary>
    [JsonPropertyName("tool_choice")] public JsonElement? ToolChoice { get; set; }
    [JsonPropertyName("parallel_tool_calls")] public bool? ParallelToolCalls { get; set; }
    /// <summary>{"type":"text"}, {"type":"json_object"} or {"type":"json_schema","json_schema":{…}}.</summary>
    [JsonPropertyName("response_format")] public JsonElement? ResponseFormat { get; set; }
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; set; }

    /// <summary>The client's own request when its front door speaks another protocol than OpenAI's (see <see cref="NativeRequest"/>).</summary>
    [JsonIgnore] public NativeRequest? Native { get; set; }

    [JsonIgnore] public bool IsStreaming => Stream == true;
    [JsonIgnore] public bool ClientWantsStreamUsage => StreamOptions?.IncludeUsage == true;

    /// <summary>A shallow copy asking for a stream (usage options are the provider adapter's to set).</summary>
    public ChatCompletionRequest AsStreamed()
    {
        var copy = (ChatCompletionRequest)MemberwiseClone();
        copy.Stream = true;
        copy.StreamOptions = null;
        return copy;
    }

    /// <summary>A shallow copy with an output limit (<c>max_tokens</c>) set.</summary>
    public ChatCompletionRequest WithMaxTokens(int maxTokens)
    {
        var copy = (ChatCompletionRequest)MemberwiseClone();
        copy.MaxTokens = maxTokens;
        return copy;
    }

    /// <summary>A shallow copy naming another model and stream options: the body an upstream is sent, the caller's request untouched.</summary>
    public ChatCompletionRequest ForUpstream(string model, StreamOptions? streamOptions)
    {
        var copy = (ChatCompletionRequest)MemberwiseClone();
        copy.Model = model;
        copy.StreamOptions = streamOptions;
        return copy;
    }

    /// <summary>A shallow copy with other messages (the fields and unknown fields are shared, not copied; the native request, which
    /// would say otherwise, is not kept).</summary>
    public ChatCompletionRequest WithMessages(List<ChatMessage> messages)
    {
        var copy = (ChatCompletionRequest)MemberwiseClone();
        copy.Messages = messages;
        copy.Native = null;
        return copy;
    }
}

public sealed class StreamOptions
{
    [JsonPropertyName("include_usage")] public bool? IncludeUsage { get; set; }
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; set; }
}

/// <summary>One message. <see cref="Content"/> is a string, an array of parts, or absent.</summary>
public sealed class ChatMessage
{
    [JsonPropertyName("role")] public string? Role { get; set; }
    [JsonPropertyName("content")] public JsonElement? Content { get; set; }
    [JsonPropertyName("name")] public string? Name { get; set; }
    [JsonPropertyName("tool_calls")] public JsonElement? ToolCalls { get; set; }
    [JsonPropertyName("tool_call_id")] public string? ToolCallId { get; set; }
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; set; }

    /// <summary>The text of the message: the string content, or its text parts joined.</summary>
    public string Text()
    {
        if (Content is not { } content) return "";
        if (content.ValueKind == JsonValueKind.String) return content.GetString() ?? "";
        if (content.ValueKind != JsonValueKind.Array) return "";
        var parts = new List<string>();
        foreach (var part in content.EnumerateArray())
        {
            if (part.ValueKind == JsonValueKind.Object
                && part.TryGetProperty("text", out var text)
                && text.ValueKind == JsonValueKind.String)
            {
                parts.Add(text.GetString() ?? "");
            }
        }
        return string.Join('\n', parts);
    }
}
