using System.Collections.Frozen;

namespace Gateway.Core.Keys;

/// <summary>An issued key as the hot path sees it (from the in-memory snapshot).</summary>
public sealed record GatewayKey(
    Guid Id,
    string Name,
    string Prefix,
    byte[] Hash,
    FrozenSet<string> AllowedModels,
    DateTimeOffset? ExpiresAt,
    DateTimeOffset? RevokedAt,
    FrozenSet<string>? Tags = null,
    int? RpmLimit = null,
    int? TpmLimit = null,
    decimal? DailyBudgetUsd = null,
    decimal? HardCapUsd = null,
    string? DowngradeModel = null,
    int? CacheTtlSeconds = null,
    IReadOnlyList<BudgetTier>? BudgetTiers = null,
    decimal? MonthlyBudgetUsd = null,
    decimal? EndUserDailyBudgetUsd = null,
    Guards.InjectionAction? InjectionFilter = null,
    Caching.CacheScope CacheScope = Caching.CacheScope.Key)
{
    /// <summary>Downgrade tiers by share of the daily budget spent, lowest first; <see cref="DowngradeModel"/> is the 100% tier.</summary>
    public IReadOnlyList<BudgetTier> Tiers { get; } = [.. (BudgetTiers ?? [])
        .Concat(DowngradeModel is { } model ? [new BudgetTier(100, model)] : [])
        .OrderBy(t => t.AtPercent)];

    /// <summary>
    /// The key's tiers; when the key names no <see cref="DowngradeModel"/>, with <paramref name="downgrade"/> (a routing rule's
    /// target or the global default) as the 100% tier.
    /// </summary>
    public IReadOnlyList<BudgetTier> TiersWith(string? downgrade) => DowngradeModel is null && downgrade is not null
        ? [.. Tiers.Append(new BudgetTier(100, downgrade)).OrderBy(t => t.AtPercent)]
        : Tiers;

    /// <summary>
    /// The model of the highest of <paramref name="tiers"/> the day's spend has reached, or null. A daily budget of 0 is spent
    /// before the first request: every tier is reached.
    /// </summary>
    public string? TierModel(decimal spent, IReadOnlyList<BudgetTier> tiers)
    {
        if (DailyBudgetUsd is not { } daily) return null;
        for (var i = tiers.Count - 1; i >= 0; i--) // every request: a loop, no delegate
        {
            if (spent * 100 >= daily * tiers[i].AtPercent) return tiers[i].Model;
        }
        return null;
    }

    public bool HasBudget => DailyBudgetUsd is not null || HardCapUsd is not null || MonthlyBudgetUsd is not null || EndUserDailyBudgetUsd is not null;

    /// <summary>Team, project or other labels routing rules and reports use.</summary>
    public FrozenSet<string> Tags { get; } = Tags ?? FrozenSet<string>.Empty;

    public bool MayUse(string alias) => AllowedModels.Count == 0 || AllowedModels.Contains(alias);
}

/// <summary>From <paramref name="AtPercent"/> of the daily budget spent, requests go to <paramref name="Model"/>.</summary>
public sealed record BudgetTier(
    [property: System.Text.Json.Serialization.JsonPropertyName("at_percent")] int AtPercent,
    [property: System.Text.Json.Serialization.JsonPropertyName("model")] string Model);
