using System.Text.Json;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers.Anthropic;

internal static class AnthropicResponseMapper
{
    /// <summary>Anthropic stop_reason → OpenAI finish_reason.</summary>
    public static string FinishReason(string? stopReason) => stopReason switch
    {
        "max_tokens" or "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop", // end_turn, stop_sequence, pause_turn
    };

    /// <summary>
    /// usage → OpenAI usage (https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching#tracking-cache-performance).
    /// Anthropic's input_tokens excludes cache reads and writes, which are input too: prompt = input + cache_creation +
    /// cache_read, cached = cache_read. Writes are billed by their entries' lifetime (5-minute writes at 1.25× the input
    /// price, 1-hour writes at 2×), which the <c>cache_creation</c> object splits; a write it does not attribute to a 1-hour
    /// entry has the default lifetime, 5 minutes.
    /// </summary>
    public static (TokenUsage Usage, ChatUsage Wire) Usage(AnthropicCounts c)
    {
        var prompt = c.Input + c.CacheCreation + c.CacheRead;
        var written1h = Math.Min(c.CacheCreation1h, c.CacheCreation);
        return (new TokenUsage(prompt, c.Output, c.CacheRead, c.CacheCreation - written1h, written1h),
            new ChatUsage(prompt, c.Output, prompt + c.Output, new PromptTokensDetails(c.CacheRead)));
    }

    public static AnthropicCounts Counts(JsonElement usage)
    {
        var split = usage.TryGetProperty("cache_creation", out var s) && s.ValueKind == JsonValueKind.Object ? s : default;
        var (fiveMinutes, oneHour) = (TokenUsage.Int(split, "ephemeral_5m_input_tokens"), TokenUsage.Int(split, "ephemeral_1h_input_tokens"));
        return new AnthropicCounts(TokenUsage.Int(usage, "input_tokens"),
            Math.Max(TokenUsage.Int(usage, "cache_creation_input_tokens"), fiveMinutes + oneHour), oneHour,
            TokenUsage.Int(usage, "cache_read_input_tokens"), TokenUsage.Int(usage, "output_tokens"));
    }
}

/// <summary>
/// An Anthropic <c>usage</c> object's counts: <paramref name="CacheCreation"/> is every cache write, of which
/// <paramref name="CacheCreation1h"/> went to 1-hour entries (<c>cache_creation.ephemeral_1h_input_tokens</c>).
/// </summary>
internal readonly record struct AnthropicCounts(int Input, int CacheCreation, int CacheCreation1h, int CacheRead, int Output);
