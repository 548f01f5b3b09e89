using Gateway.Core.Catalog;
using Gateway.Core.Providers;

namespace Gateway.Core.Metering;

/// <summary>Cost in exact decimal USD: cached prompt tokens at the cached price, the rest at the input price.</summary>
public static class Pricing
{
    private const decimal PerMillion = 1_000_000m;

    public static decimal Cost(ModelRoute model, TokenUsage usage)
    {
        var cached = Math.Min(usage.CachedTokens, usage.PromptTokens);
        return ((usage.PromptTokens - cached) * model.InputPricePerMTok
                + cached * model.CachedInputPricePerMTok
                + usage.CompletionTokens * model.OutputPricePerMTok) / PerMillion;
    }
}
