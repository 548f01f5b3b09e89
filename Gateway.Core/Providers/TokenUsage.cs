using System.Text.Json;

namespace Gateway.Core.Providers;

/// <summary>
/// Tokens of one answer, as the provider reported them (or as estimated). <see cref="PromptTokens"/> is the whole prompt;
/// of it, <see cref="CachedTokens"/> were read from the provider's prompt cache, <see cref="CacheWriteTokens"/> written to it
/// (Anthropic's 5-minute entries, or a provider that does not say how long) and <see cref="CacheWrite1hTokens"/> written to
/// Anthropic's 1-hour entries. Each part has its own price (<see cref="Metering.Pricing"/>).
/// </summary>
public readonly record struct TokenUsage(int PromptTokens, int CompletionTokens, int CachedTokens, int CacheWriteTokens = 0,
    int CacheWrite1hTokens = 0)
{
    /// <summary>Counted by the gateway's tokenizer because the provider reported nothing.</summary>
    public bool Estimated { get; init; }

    /// <summary>
    /// Reads an OpenAI-style <c>usage</c> object: cached tokens from <c>prompt_tokens_details.cached_tokens</c>, or DeepSeek's
    /// <c>prompt_cache_hit_tokens</c>; cache writes from <c>prompt_tokens_details.cache_write_tokens</c>, which OpenAI-compatible
    /// APIs that bill writes report (OpenRouter: https://openrouter.ai/docs/prompt-caching).
    /// </summary>
    public static TokenUsage? FromOpenAI(JsonElement usage)
    {
        if (usage.ValueKind != JsonValueKind.Object) return null;
        var cached = 0;
        var written = 0;
        if (usage.TryGetProperty("prompt_tokens_details", out var details) && details.ValueKind == JsonValueKind.Object
            && details.TryGetProperty("cached_tokens", out _))
            cached = Int(details, "cached_tokens");
        else
            cached = Int(usage, "prompt_cache_hit_tokens");
        if (details.ValueKind == JsonValueKind.Object) written = Int(details, "cache_write_tokens");
        return new TokenUsage(Int(usage, "prompt_tokens"), Int(usage, "completion_tokens"), cached, written);
    }

    /// <summary>Both attempts' tokens (a continued stream, or usage a failed candidate reported before another answered).</summary>
    public TokenUsage Plus(TokenUsage other) => new(PromptTokens + other.PromptTokens, CompletionTokens + other.CompletionTokens,
        CachedTokens + other.CachedTokens, CacheWriteTokens + other.CacheWriteTokens, CacheWrite1hTokens + other.CacheWrite1hTokens);

    /// <summary>A token count from a provider's JSON: 0 when absent, not a whole number, or out of range.</summary>
    public static int Int(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number
        && v.TryGetInt32(out var n) && n >= 0 ? n : 0;
}
