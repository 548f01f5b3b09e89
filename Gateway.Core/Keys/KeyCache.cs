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

    public async Task ReloadAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<HashedKey>($"SELECT {KeyView.Columns}, key_hash FROM api_keys", ct);
        Interlocked.Exchange(ref _keys, rows.ToFrozenDictionary(r => ApiKeySecret.Slot(r.KeyHash), ToGatewayKey));
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

    /// <summary>The one place a key's row becomes the hot path's <see cref="GatewayKey"/>.</summary>
    private static GatewayKey ToGatewayKey(HashedKey row) => new(
        row.Id, row.Name, row.Prefix, row.KeyHash, row.AllowedModels.ToFrozenSet(StringComparer.Ordinal), Utc(row.ExpiresAt), Utc(row.RevokedAt),
        Tags: row.Tags.ToFrozenSet(StringComparer.Ordinal),
        RpmLimit: row.RpmLimit,
        TpmLimit: row.TpmLimit,
        DailyBudgetUsd: row.DailyBudgetUsd,
        HardCapUsd: row.HardCapUsd,
        DowngradeModel: row.DowngradeModel,
        CacheTtlSeconds: row.CacheTtlSeconds,
        BudgetTiers: row.BudgetTiers,
        MonthlyBudgetUsd: row.MonthlyBudgetUsd,
        EndUserDailyBudgetUsd: row.EndUserDailyBudgetUsd,
        InjectionFilter: Guards.InjectionFilter.ParseAction(row.InjectionFilter),
        // The column's CHECK admits only known scopes; anything else keeps the key to itself.
        CacheScope: Caching.ResponseCache.ParseScope(row.CacheScope) ?? Caching.CacheScope.Key);

    private static DateTimeOffset? Utc(DateTime? value) => value is { } v ? new DateTimeOffset(v, TimeSpan.Zero) : null;

#pragma warning disable CA1812 // instantiated by Dapper
    /// <summary>A key's row with its hash, which only the snapshot reads (internal: Dapper.AOT's generated code cannot reach a private type).</summary>
    internal sealed record HashedKey : KeyView
    {
        public byte[] KeyHash { get; init; } = [];
    }
#pragma warning restore CA1812
}
