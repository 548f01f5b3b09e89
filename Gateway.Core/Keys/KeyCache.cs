using System.Collections.Frozen;
using System.Security.Cryptography;
using Dapper;
using Gateway.Core.Errors;
using Npgsql;

namespace Gateway.Core.Keys;

/// <summary>
/// Every key, in memory, as an immutable snapshot swapped atomically; reloaded by the
/// <see cref="Persistence.ChangeListener"/> on NOTIFY, so authentication costs no database round trip.
/// </summary>
public sealed class KeyCache(NpgsqlDataSource db, TimeProvider time)
{
    private FrozenDictionary<UInt128, GatewayKey> _keys = FrozenDictionary<UInt128, GatewayKey>.Empty;

    public int Count => _keys.Count;

    private const string LoadSql = """
        SELECT id, name, prefix, key_hash, allowed_models, tags, rpm_limit, tpm_limit, daily_budget_usd, hard_cap_usd, downgrade_model,
               cache_ttl_seconds, budget_tiers::text AS budget_tiers_json, monthly_budget_usd, end_user_daily_budget_usd,
               injection_filter, cache_scope, expires_at, revoked_at
        FROM api_keys
        """;

    public async Task ReloadAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<KeyRow>(new CommandDefinition(LoadSql, cancellationToken: ct));
        var keys = rows.ToFrozenDictionary(
            r => ApiKeySecret.Slot(r.KeyHash),
            r => new GatewayKey(r.Id, r.Name, r.Prefix, r.KeyHash, r.AllowedModels.ToFrozenSet(StringComparer.Ordinal),
                Utc(r.ExpiresAt), Utc(r.RevokedAt), r.Tags.ToFrozenSet(StringComparer.Ordinal), r.RpmLimit, r.TpmLimit,
                r.DailyBudgetUsd, r.HardCapUsd, r.DowngradeModel, r.CacheTtlSeconds,
                System.Text.Json.JsonSerializer.Deserialize<List<BudgetTier>>(r.BudgetTiersJson), r.MonthlyBudgetUsd,
                r.EndUserDailyBudgetUsd, Guards.InjectionFilter.ParseAction(r.InjectionFilter),
                // The column's CHECK admits only known scopes; anything else keeps the key to itself.
                Caching.ResponseCache.ParseScope(r.CacheScope) ?? Caching.CacheScope.Key));
        Interlocked.Exchange(ref _keys, keys);
    }

    /// <summary>A key by id (admin use: scans the snapshot).</summary>
    public GatewayKey? Find(Guid id) => _keys.Values.FirstOrDefault(k => k.Id == id);

    /// <summary>Finds the key for a bearer token, or says why it is refused.</summary>
    public (GatewayKey? Key, GatewayError? Failure) Authenticate(ReadOnlySpan<char> presented)
    {
        if (presented.IsEmpty) return (null, GatewayError.MissingKey);
        Span<byte> hash = stackalloc byte[32];
        if (!presented.StartsWith(ApiKeySecret.Scheme, StringComparison.Ordinal) || !ApiKeySecret.TryHash(presented, hash))
            return (null, GatewayError.InvalidKey);
        if (!_keys.TryGetValue(ApiKeySecret.Slot(hash), out var key) || !CryptographicOperations.FixedTimeEquals(key.Hash, hash))
            return (null, GatewayError.InvalidKey);
        if (key.RevokedAt is not null) return (null, GatewayError.RevokedKey);
        if (key.ExpiresAt is { } expires && expires <= time.GetUtcNow()) return (null, GatewayError.ExpiredKey);
        return (key, null);
    }

    private static DateTimeOffset? Utc(DateTime? value) => value is { } v ? new DateTimeOffset(v, TimeSpan.Zero) : null;

#pragma warning disable CA1812 // instantiated by Dapper
    private sealed class KeyRow
    {
        public Guid Id { get; init; }
        public string Name { get; init; } = "";
        public string Prefix { get; init; } = "";
        public byte[] KeyHash { get; init; } = [];
        public string[] AllowedModels { get; init; } = [];
        public string[] Tags { get; init; } = [];
        public int? RpmLimit { get; init; }
        public int? TpmLimit { get; init; }
        public decimal? DailyBudgetUsd { get; init; }
        public decimal? HardCapUsd { get; init; }
        public string? DowngradeModel { get; init; }
        public int? CacheTtlSeconds { get; init; }
        public string BudgetTiersJson { get; init; } = "[]";
        public decimal? MonthlyBudgetUsd { get; init; }
        public decimal? EndUserDailyBudgetUsd { get; init; }
        public string? InjectionFilter { get; init; }
        public string CacheScope { get; init; } = "key";
        public DateTime? ExpiresAt { get; init; }
        public DateTime? RevokedAt { get; init; }
    }
#pragma warning restore CA1812
}
