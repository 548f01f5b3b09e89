using System.Text.Json;

namespace Gateway.Core.Providers;

/// <summary>Tokens of one answer, as the provider reported them (or as estimated).</summary>
public readonly record struct TokenUsage(int PromptTokens, int CompletionTokens, int CachedTokens)
{
    /// <summary>Counted by the gateway's tokenizer because the provider reported nothing.</summary>
    public bool Estimated { get; init; }

    /// <summary>
    /// Reads an OpenAI-style <c>usage</c> object: cached tokens from
    /// <c>prompt_tokens_details.cached_tokens</c>, or DeepSeek's <c>prompt_cache_hit_tokens</c>.
    /// </summary>
    public static TokenUsage? FromOpenAI(JsonElement usage)
    {
        if (usage.ValueKind != JsonValueKind.Object) return null;
        var cached = 0;
        if (usage.TryGetProperty("prompt_tokens_details", out var details) && details.ValueKind == JsonValueKind.Object
            && details.TryGetProperty("cached_tokens", out _))
            cached = Int(details, "cached_tokens");
        else
            cached = Int(usage, "prompt_cache_hit_tokens");
        return new TokenUsage(Int(usage, "prompt_tokens"), Int(usage, "completion_tokens"), cached);
    }

    /// <summary>A token count from a provider's JSON: 0 when absent, not a whole number, or out of range.</summary>
    public static int Int(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number
        && v.TryGetInt32(out var n) && n >= 0 ? n : 0;
}
