using Gateway.Core.Catalog;
using Gateway.Core.Providers;

namespace Gateway.Core.Metering;

/// <summary>
/// Cost in exact decimal USD. A prompt token is billed at one of four prices: read from the provider's prompt cache (the cached
/// price), written to it (the cache-write price; Anthropic's 1-hour entries at the 1-hour price), or neither (the input price).
/// </summary>
public static class Pricing
{
    private const decimal PerMillion = 1_000_000m;

    public static decimal Cost(ModelRoute model, TokenUsage usage)
    {
        // The parts of a prompt never add up to more than the prompt, whatever a provider reports; the dearest parts are
        // counted first, so an inconsistent report is never priced below what it could have cost.
        var rest = usage.PromptTokens;
        var written1h = Take(ref rest, usage.CacheWrite1hTokens);
        var written = Take(ref rest, usage.CacheWriteTokens);
        var read = Take(ref rest, usage.CachedTokens);
        return ((decimal)rest * model.InputPricePerMTok + (decimal)read * model.CachedInputPricePerMTok
                + (decimal)written * model.CacheWritePricePerMTok + (decimal)written1h * model.CacheWrite1hPricePerMTok
                + (decimal)usage.CompletionTokens * model.OutputPricePerMTok) / PerMillion;

        static int Take(ref int rest, int part)
        {
            var taken = Math.Clamp(part, 0, rest);
            rest -= taken;
            return taken;
        }
    }

    /// <summary>
    /// A model's cache-write price when none is set: 1.25× its input price, rounded up to the micro-dollar the price columns
    /// hold. That is Anthropic's price for a 5-minute write (https://docs.anthropic.com/en/docs/about-claude/pricing) and what
    /// OpenAI-compatible APIs that report writes bill; a provider that bills no writes reports none, so the price never applies
    /// there (it only makes the budget's worst case of those protocols a little dearer: set it to the input price to avoid that).
    /// </summary>
    public static decimal DefaultCacheWritePrice(decimal inputPricePerMTok) => decimal.Ceiling(inputPricePerMTok * 1.25m * PerMillion) / PerMillion;

    /// <summary>A model's 1-hour cache-write price when none is set: 2× its input price, Anthropic's price for a 1-hour write.</summary>
    public static decimal DefaultCacheWrite1hPrice(decimal inputPricePerMTok) => inputPricePerMTok * 2;

    /// <summary>
    /// The most one prompt token can cost at <paramref name="model"/>: the dearest price its protocol's answers can bill a prompt
    /// token at. Anthropic reports reads, 5-minute and 1-hour writes; OpenAI-compatible APIs reads and (OpenRouter, newer
    /// OpenAI models) writes without a lifetime; Gemini and the mock only reads (Gemini bills the tokens that fill its implicit
    /// cache at the input price).
    /// </summary>
    public static decimal DearestInputPrice(ModelRoute model)
    {
        var dearest = Math.Max(model.InputPricePerMTok, model.CachedInputPricePerMTok);
        return model.Provider.Protocol switch
        {
            "anthropic" => Math.Max(dearest, Math.Max(model.CacheWritePricePerMTok, model.CacheWrite1hPricePerMTok)),
            "openai" => Math.Max(dearest, model.CacheWritePricePerMTok),
            _ => dearest,
        };
    }

    /// <summary>
    /// An upper bound of what <paramref name="promptTokens"/> and <paramref name="outputTokens"/> can cost at <paramref name="model"/>:
    /// every prompt token at <see cref="DearestInputPrice"/>, so a budget's reservation holds even when the whole prompt is
    /// written to a cache (which costs more than plain input).
    /// </summary>
    public static decimal WorstCase(ModelRoute model, int promptTokens, long outputTokens) =>
        ((decimal)promptTokens * DearestInputPrice(model) + (decimal)outputTokens * model.OutputPricePerMTok) / PerMillion;
}
