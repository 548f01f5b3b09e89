using System.Text.Json.Serialization;

namespace Gateway.Core.Catalog;

// Providers and models as the admin REST API, the admin app and the seed file take and show them (serialized snake_case).
// Prices are decimal USD per million tokens.

public sealed record ProviderRequest(
    string? Name,
    string? Protocol,
    string? BaseUrl,
    string? SecretRef = null,
    string? Secret = null,
    bool? Enabled = null,
    ProviderSettings? Settings = null);

public sealed record ProviderView
{
    public Guid Id { get; init; }
    public string Name { get; init; } = "";
    public string Protocol { get; init; } = "";
    public string BaseUrl { get; init; } = "";
    public string? SecretRef { get; init; }
    public bool Enabled { get; init; }
    [JsonIgnore] public string? SettingsJson { get; init; }
    public ProviderSettings Settings => ProviderSettings.Parse(SettingsJson);
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }
}

public sealed record ModelRequest(
    string? Alias,
    string? Provider,
    string? UpstreamModel,
    decimal? InputPricePerMtok = null,
    decimal? OutputPricePerMtok = null,
    decimal? CachedInputPricePerMtok = null,
    int? ContextWindow = null,
    bool? Enabled = null,
    int? MaxOutputTokens = null,
    IReadOnlyList<string>? Fallbacks = null,
    int? TtftTimeoutMs = null,
    int? TimeoutMs = null,
    decimal? CacheWritePricePerMtok = null,
    [property: JsonPropertyName("cache_write_1h_price_per_mtok")] decimal? CacheWrite1hPricePerMtok = null);

public sealed record ModelView
{
    public Guid Id { get; init; }
    public string Alias { get; init; } = "";
    public string Provider { get; init; } = "";
    public string UpstreamModel { get; init; } = "";
    public decimal InputPricePerMtok { get; init; }
    public decimal OutputPricePerMtok { get; init; }
    public decimal CachedInputPricePerMtok { get; init; }
    public decimal CacheWritePricePerMtok { get; init; }
    [JsonPropertyName("cache_write_1h_price_per_mtok")] public decimal CacheWrite1hPricePerMtok { get; init; }
    public int? ContextWindow { get; init; }
    public int? MaxOutputTokens { get; init; }
    public string[] Fallbacks { get; init; } = [];
    public int? TtftTimeoutMs { get; init; }
    public int? TimeoutMs { get; init; }
    public bool Enabled { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }
}
