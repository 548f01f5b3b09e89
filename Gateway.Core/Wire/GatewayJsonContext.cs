using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gateway.Core.Wire;

/// <summary>Source-generated serializers for everything on the proxy's wire.</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, MaxDepth = 64)]
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
    /// <summary>
    /// The context to write with: quotes and apostrophes stay literal (<c>\"</c>, <c>'</c>) as in
    /// OpenAI's own bodies, instead of the HTML-safe <c>\u0022</c> escapes of the default encoder.
    /// </summary>
    public static GatewayJsonContext Wire { get; } = new(new JsonSerializerOptions
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        MaxDepth = 64,
    });
}
