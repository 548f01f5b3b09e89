using System.Text.Json;

namespace Gateway.Core.Providers;

/// <summary>Tokens of one answer, as the provider reported them (or as estimated).</summary>
public readonly record struct TokenUsage(int PromptTokens, int CompletionTokens, int CachedTokens)
{
    /// <summary>
    /// Reads an OpenAI-style <c>usage</c> object: cached tokens from
    /// <c>prompt_tokens_details.cached_tokens</c>, or DeepSeek's <c>prompt_cache_hit_tokens</c>.
    /// </summary>
    public static TokenUsage? FromOpenAI(JsonElement usage)
    {
        if (usage.ValueKind != JsonValueKind.Object) return null;
        var cached = 0;
        if (usage.TryGetProperty("prompt_tokens_details", out var details) && details.ValueKind == JsonValueKind.Object
            && details.TryGetProperty("cached_tokens", out var c) && c.ValueKind == JsonValueKind.Number)
            cached = c.GetInt32();
        else if (usage.TryGetProperty("prompt_cache_hit_tokens", out var hit) && hit.ValueKind == JsonValueKind.Number)
            cached = hit.GetInt32();
        return new TokenUsage(Int(usage, "prompt_tokens"), Int(usage, "completion_tokens"), cached);
    }

    private static int Int(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : 0;
}
