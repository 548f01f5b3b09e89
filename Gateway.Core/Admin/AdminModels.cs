using System.Text.Json.Serialization;
using Gateway.Core.Catalog;

namespace Gateway.Core.Admin;

// Bodies of the admin REST API (serialized snake_case). Money is decimal USD. Prices per million tokens name their JSON
// field: snake_case would make PerMTok "per_m_tok", and the API, seed files and columns say "per_mtok".

public sealed record CreateKeyRequest(
    string? Name,
    IReadOnlyList<string>? AllowedModels = null,
    DateTimeOffset? ExpiresAt = null,
    decimal? DailyBudgetUsd = null,
    decimal? HardCapUsd = null,
    string? DowngradeModel = null,
    int? RpmLimit = null,
    int? TpmLimit = null,
    IReadOnlyList<string>? Tags = null,
    int? CacheTtlSeconds = null,
    IReadOnlyList<Keys.BudgetTier>? BudgetTiers = null,
    decimal? MonthlyBudgetUsd = null,
    decimal? EndUserDailyBudgetUsd = null,
    string? Owner = null,
    string? InjectionFilter = null,
    string? CacheScope = null);

public record KeyView
{
    public Guid Id { get; init; }
    public string Name { get; init; } = "";
    public string? Owner { get; init; }
    public string Prefix { get; init; } = "";
    public string[] AllowedModels { get; init; } = [];
    public string[] Tags { get; init; } = [];
    public decimal? DailyBudgetUsd { get; init; }
    public decimal? HardCapUsd { get; init; }
    public decimal? MonthlyBudgetUsd { get; init; }
    public decimal? EndUserDailyBudgetUsd { get; init; }
    public string? DowngradeModel { get; init; }
    public int? RpmLimit { get; init; }
    public int? TpmLimit { get; init; }
    public int? CacheTtlSeconds { get; init; }
    /// <summary>Who shares the key's cached answers: <c>key</c> (only itself, the default), <c>tags</c> (keys with the same tag set
    /// that chose <c>tags</c>) or <c>global</c> (every key that chose <c>global</c>).</summary>
    public string CacheScope { get; init; } = "key";
    /// <summary>The key's prompt-injection filter action (<c>off</c>, <c>flag</c>, <c>block</c>); null: the gateway's default alone.</summary>
    public string? InjectionFilter { get; init; }
    [JsonIgnore] public string BudgetTiersJson { get; init; } = "[]";
    public IReadOnlyList<Keys.BudgetTier> BudgetTiers => System.Text.Json.JsonSerializer.Deserialize<List<Keys.BudgetTier>>(BudgetTiersJson) ?? [];
    public DateTime? ExpiresAt { get; init; }
    public DateTime? RevokedAt { get; init; }
    public DateTime CreatedAt { get; init; }
}

/// <summary>A key in the admin app's list: its settings and what it spent on the current budget day.</summary>
public sealed record KeyListRow : KeyView
{
    public decimal SpentTodayUsd { get; init; }
}

/// <summary>The only time a key is shown: the answer to its creation.</summary>
public sealed record CreatedKey : KeyView
{
    public CreatedKey(string key, KeyView details) : base(details) => Key = key;

    public string Key { get; }
}

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

public sealed record ModelView
{
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

/// <summary>The declarative seed file (<c>gateway.json</c>): providers, models and routing rules upserted at start-up.</summary>
public sealed record SeedFile(IReadOnlyList<ProviderRequest>? Providers, IReadOnlyList<ModelRequest>? Models,
    IReadOnlyList<Routing.RoutingRule>? Routes = null);
