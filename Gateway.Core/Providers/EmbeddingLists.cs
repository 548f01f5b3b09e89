using System.Runtime.InteropServices;
using System.Text.Json;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers;

/// <summary>Builds OpenAI's embeddings answer from vectors (for adapters whose provider answers otherwise).</summary>
internal static class EmbeddingLists
{
    public static byte[] Build(string model, IReadOnlyList<float[]> vectors, int promptTokens, string? encodingFormat)
    {
        var data = vectors.Select((vector, index) => new Embedding("embedding", index, encodingFormat == "base64"
            ? JsonSerializer.SerializeToElement(Convert.ToBase64String(MemoryMarshal.AsBytes(vector.AsSpan())), GatewayJsonContext.Wire.String)
            : JsonSerializer.SerializeToElement(vector, GatewayJsonContext.Wire.SingleArray))).ToList();
        return JsonSerializer.SerializeToUtf8Bytes(new EmbeddingList("list", data, model, new EmbeddingUsage(promptTokens, promptTokens)),
            GatewayJsonContext.Wire.EmbeddingList);
    }
}
