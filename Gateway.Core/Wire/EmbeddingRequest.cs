using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gateway.Core.Wire;

/// <summary>OpenAI's embeddings request; unknown fields survive for OpenAI-compatible upstreams.</summary>
public sealed class EmbeddingRequest
{
    [JsonPropertyName("model")] public string? Model { get; set; }
    /// <summary>A string, an array of strings, an array of token ids, or an array of token-id arrays.</summary>
    [JsonPropertyName("input")] public JsonElement? Input { get; set; }
    [JsonPropertyName("dimensions")] public int? Dimensions { get; set; }
    [JsonPropertyName("encoding_format")] public string? EncodingFormat { get; set; }
    [JsonPropertyName("user")] public string? User { get; set; }
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; set; }

    /// <summary>A shallow copy naming another model: the body an upstream is sent, the caller's request untouched.</summary>
    public EmbeddingRequest ForUpstream(string model)
    {
        var copy = (EmbeddingRequest)MemberwiseClone();
        copy.Model = model;
        return copy;
    }

    /// <summary>The inputs as texts; null when they are token ids.</summary>
    public IReadOnlyList<string>? Texts() => Input switch
    {
        { ValueKind: JsonValueKind.String } s => [s.GetString()!],
        { ValueKind: JsonValueKind.Array } a when a.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) => [.. a.EnumerateArray().Select(e => e.GetString()!)],
        _ => null,
    };

    /// <summary>The input's size in tokens: texts counted with <paramref name="count"/>, token ids as given.</summary>
    public int Tokens(Func<string, int> count) => Texts() is { } texts ? texts.Sum(count)
        : Input is { ValueKind: JsonValueKind.Array } ids
            ? ids.EnumerateArray().Sum(e => e.ValueKind == JsonValueKind.Array ? e.GetArrayLength() : 1)
            : 0;
}

public sealed record EmbeddingList(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("data")] IReadOnlyList<Embedding> Data,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("usage")] EmbeddingUsage Usage);

/// <summary>One vector: an array of floats, or base64 of little-endian float32s when <c>encoding_format</c> is base64.</summary>
public sealed record Embedding(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("embedding")] JsonElement Vector);

public sealed record EmbeddingUsage(
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("total_tokens")] int TotalTokens);
