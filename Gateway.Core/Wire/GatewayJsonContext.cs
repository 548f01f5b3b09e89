using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gateway.Core.Wire;

/// <summary>Source-generated serializers for everything on the proxy's wire.</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, MaxDepth = GatewayJsonContext.MaxWireDepth)]
[JsonSerializable(typeof(ChatCompletionRequest))]
[JsonSerializable(typeof(EmbeddingRequest))]
[JsonSerializable(typeof(EmbeddingList))]
[JsonSerializable(typeof(float[]))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(ChatCompletion))]
[JsonSerializable(typeof(ChatCompletionChunk))]
[JsonSerializable(typeof(ModelList))]
[JsonSerializable(typeof(OpenAIErrorBody))]
[JsonSerializable(typeof(System.Text.Json.Nodes.JsonObject))]
public sealed partial class GatewayJsonContext : JsonSerializerContext
{
    /// <summary>Deepest nesting of objects and arrays a client's request may have; deeper is a 400.</summary>
    public const int MaxRequestDepth = 64;

    /// <summary>
    /// Deepest nesting written or read from upstreams: above <see cref="MaxRequestDepth"/>, because adapters wrap a
    /// request's parts in more levels (a tool call's arguments, parsed from their string, inside Anthropic's blocks).
    /// </summary>
    public const int MaxWireDepth = 128;

    /// <summary>
    /// The context to write with: quotes and apostrophes stay literal (<c>\"</c>, <c>'</c>) as in
    /// OpenAI's own bodies, instead of the HTML-safe <c>\u0022</c> escapes of the default encoder.
    /// </summary>
    public static GatewayJsonContext Wire { get; } = new(new JsonSerializerOptions
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        MaxDepth = MaxWireDepth,
    });

    /// <summary>
    /// The context that reads clients' request bodies: at most <see cref="MaxRequestDepth"/> levels, and a key given
    /// twice is refused (parsers disagree on which one wins, so a gateway and its upstream could read different requests).
    /// </summary>
    public static GatewayJsonContext Requests { get; } = new(new JsonSerializerOptions
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        MaxDepth = MaxRequestDepth,
        AllowDuplicateProperties = false,
    });
}
