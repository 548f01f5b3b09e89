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

/// <summary>A provider's row: what the admin API and the admin app show (its secret reference masked), and what the in-memory
/// <see cref="ModelCatalog"/> is built from.</summary>
public sealed record ProviderView
{
    /// <summary>The <c>providers</c> columns every provider query selects, named as these properties.</summary>
    internal const string Columns = "id, name, protocol, base_url, secret_ref, enabled, settings::text AS settings_json, created_at, updated_at";

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
    [property: JsonPropertyName("input_price_per_mtok")] decimal? InputPricePerMTok = null,
    [property: JsonPropertyName("output_price_per_mtok")] decimal? OutputPricePerMTok = null,
    [property: JsonPropertyName("cached_input_price_per_mtok")] decimal? CachedInputPricePerMTok = null,
    int? ContextWindow = null,
    bool? Enabled = null,
    int? MaxOutputTokens = null,
    IReadOnlyList<string>? Fallbacks = null,
    int? TtftTimeoutMs = null,
    int? TimeoutMs = null,
    [property: JsonPropertyName("cache_write_price_per_mtok")] decimal? CacheWritePricePerMTok = null,
    [property: JsonPropertyName("cache_write_1h_price_per_mtok")] decimal? CacheWrite1hPricePerMTok = null);

/// <summary>A model's row with its provider's name: what the admin API and the admin app show, and what the in-memory
/// <see cref="ModelCatalog"/> is built from.</summary>
public sealed record ModelView
{
    /// <summary>Every model query's select: the <c>models</c> columns named as these properties, and the provider's name.</summary>
    internal const string Select = """
        SELECT m.id, m.alias, p.name AS provider, m.upstream_model, m.input_price_per_mtok, m.output_price_per_mtok,
               m.cached_input_price_per_mtok, m.cache_write_price_per_mtok, m.cache_write_1h_price_per_mtok, m.context_window, m.max_output_tokens, m.fallbacks, m.ttft_timeout_ms, m.timeout_ms, m.enabled, m.created_at, m.updated_at
        FROM models m JOIN providers p ON p.id = m.provider_id
        """;

    public Guid Id { get; init; }
    public string Alias { get; init; } = "";
    public string Provider { get; init; } = "";
    public string UpstreamModel { get; init; } = "";
    [JsonPropertyName("input_price_per_mtok")] public decimal InputPricePerMTok { get; init; }
    [JsonPropertyName("output_price_per_mtok")] public decimal OutputPricePerMTok { get; init; }
    [JsonPropertyName("cached_input_price_per_mtok")] public decimal CachedInputPricePerMTok { get; init; }
    [JsonPropertyName("cache_write_price_per_mtok")] public decimal CacheWritePricePerMTok { get; init; }
    [JsonPropertyName("cache_write_1h_price_per_mtok")] public decimal CacheWrite1hPricePerMTok { get; init; }
    public int? ContextWindow { get; init; }
    public int? MaxOutputTokens { get; init; }
    public string[] Fallbacks { get; init; } = [];
    public int? TtftTimeoutMs { get; init; }
    public int? TimeoutMs { get; init; }
    public bool Enabled { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }
}
