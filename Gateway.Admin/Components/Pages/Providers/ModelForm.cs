using Gateway.Core.Catalog;

namespace Gateway.Admin.Components.Pages.Providers;

/// <summary>The model editor's fields, named as the request's so validation problems land on them (<see cref="ModelRequestValidator"/>).</summary>
public sealed class ModelForm
{
    public string Alias { get; set; } = "";
    public string Provider { get; set; } = "";
    public string UpstreamModel { get; set; } = "";
    public decimal? InputPricePerMTok { get; set; }
    public decimal? OutputPricePerMTok { get; set; }
    public decimal? CachedInputPricePerMTok { get; set; }
    public decimal? CacheWritePricePerMTok { get; set; }
    public decimal? CacheWrite1hPricePerMTok { get; set; }
    public int? ContextWindow { get; set; }
    public int? MaxOutputTokens { get; set; }
    /// <summary>Comma-separated aliases tried next, in order.</summary>
    public string? Fallbacks { get; set; }
    public int? TtftTimeoutMs { get; set; }
    public int? TimeoutMs { get; set; }
    public bool Enabled { get; set; } = true;

    public static ModelForm From(ModelView model) => new()
    {
        Alias = model.Alias,
        Provider = model.Provider,
        UpstreamModel = model.UpstreamModel,
        InputPricePerMTok = model.InputPricePerMTok,
        OutputPricePerMTok = model.OutputPricePerMTok,
        CachedInputPricePerMTok = model.CachedInputPricePerMTok,
        CacheWritePricePerMTok = model.CacheWritePricePerMTok,
        CacheWrite1hPricePerMTok = model.CacheWrite1hPricePerMTok,
        ContextWindow = model.ContextWindow,
        MaxOutputTokens = model.MaxOutputTokens,
        Fallbacks = string.Join(", ", model.Fallbacks),
        TtftTimeoutMs = model.TtftTimeoutMs,
        TimeoutMs = model.TimeoutMs,
        Enabled = model.Enabled,
    };

    public ModelRequest ToRequest() => new(
        Alias: Alias.Trim(),
        Provider: Provider,
        UpstreamModel: UpstreamModel.Trim(),
        InputPricePerMTok: InputPricePerMTok,
        OutputPricePerMTok: OutputPricePerMTok,
        CachedInputPricePerMTok: CachedInputPricePerMTok,
        ContextWindow: ContextWindow,
        Enabled: Enabled,
        MaxOutputTokens: MaxOutputTokens,
        Fallbacks: Fallbacks is null ? [] : [.. Fallbacks.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)],
        TtftTimeoutMs: TtftTimeoutMs,
        TimeoutMs: TimeoutMs,
        CacheWritePricePerMTok: CacheWritePricePerMTok,
        CacheWrite1hPricePerMTok: CacheWrite1hPricePerMTok);
}
