using System.Text.Json.Serialization;

namespace Gateway.Core.Keys;

// A key as the admin REST API and the admin app take and show it (serialized snake_case). Money is decimal USD.

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
    IReadOnlyList<BudgetTier>? BudgetTiers = null,
    decimal? MonthlyBudgetUsd = null,
    decimal? EndUserDailyBudgetUsd = null,
    string? Owner = null,
    string? InjectionFilter = null,
    string? CacheScope = null);

/// <summary>
/// A key's row (never its secret or hash): what the admin API and the admin app show, and what the in-memory snapshot
/// (<see cref="KeyCache"/>) is built from.
/// </summary>
public record KeyView
{
    /// <summary>The <c>api_keys</c> columns every key query selects, named as these properties (callers add <c>key_hash</c> or a spend).</summary>
    internal const string Columns = """
        id, name, owner, prefix, allowed_models, tags, daily_budget_usd, hard_cap_usd, monthly_budget_usd, end_user_daily_budget_usd, downgrade_model, rpm_limit, tpm_limit,
        cache_ttl_seconds, cache_scope, budget_tiers::text AS budget_tiers_json, injection_filter, expires_at, revoked_at, created_at
        """;

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
    public IReadOnlyList<BudgetTier> BudgetTiers => System.Text.Json.JsonSerializer.Deserialize(BudgetTiersJson, Persistence.StoredJson.Default.ListBudgetTier) ?? [];
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
