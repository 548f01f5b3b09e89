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
    int? CacheTtlSeconds = null)
{
    public bool HasBudget => DailyBudgetUsd is not null || HardCapUsd is not null;

    /// <summary>Team, project or other labels routing rules and reports use.</summary>
    public FrozenSet<string> Tags { get; } = Tags ?? FrozenSet<string>.Empty;

    public bool MayUse(string alias) => AllowedModels.Count == 0 || AllowedModels.Contains(alias);
}
