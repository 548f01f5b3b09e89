using Dapper;
using Gateway.Core.Audit;
using Npgsql;

namespace Gateway.Core.Keys;

/// <summary>
/// Issues, lists and revokes keys. Only the hash and a short prefix are stored. Every change is recorded in the audit log,
/// under the actor the caller names, with the key as it was before and after.
/// </summary>
public sealed class KeyStore(NpgsqlDataSource db, AuditLog audit, TimeProvider time)
{
    private const string Entity = "key";

    private const string InsertSql = $"""
        INSERT INTO api_keys (id, name, owner, prefix, key_hash, allowed_models, tags, daily_budget_usd, hard_cap_usd, downgrade_model,
                              rpm_limit, tpm_limit, cache_ttl_seconds, cache_scope, budget_tiers, monthly_budget_usd, end_user_daily_budget_usd, injection_filter,
                              expires_at, created_at)
        VALUES (@Id, @Name, @Owner, @Prefix, @Hash, @AllowedModels, @Tags, @DailyBudgetUsd, @HardCapUsd, @DowngradeModel,
                @RpmLimit, @TpmLimit, @CacheTtlSeconds, @CacheScope, @BudgetTiers::jsonb, @MonthlyBudgetUsd, @EndUserDailyBudgetUsd, @InjectionFilter,
                @ExpiresAt, @CreatedAt)
        RETURNING {KeyView.Columns}
        """;

    public async Task<CreatedKey> CreateAsync(CreateKeyRequest request, string actor, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var created = await InsertAsync(connection, null, Guid.CreateVersion7(time.GetUtcNow()), request, ct);
        await audit.RecordAsync(connection, null, actor, AuditActions.KeyCreate, Entity, created.Id.ToString(), null, created, ct);
        return created;
    }

    /// <summary>
    /// Issues a key only if no key was ever issued under <paramref name="marker"/> in this database (a row in
    /// <c>seed_markers</c> holding the key's id, written in the key's own transaction): null if one was, even if that key
    /// has since been renamed, revoked or deleted. Concurrent callers on any instance issue exactly one key between them. The
    /// audit row is written in the same transaction: a key is issued with its row or not at all (it can never be issued again,
    /// so an issued key without one could not be made up for).
    /// </summary>
    public async Task<CreatedKey?> CreateOnceAsync(string marker, CreateKeyRequest request, string actor, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var id = Guid.CreateVersion7(now);
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        // A concurrent claim of the same marker waits here for the first one's commit, then claims nothing.
        var claimed = await connection.ExecuteAsync("""
            INSERT INTO seed_markers (name, ref_id, created_at) VALUES (@marker, @id, @now) ON CONFLICT (name) DO NOTHING
            """, new { marker, id, now = now.UtcDateTime, ct }, transaction);
        if (claimed == 0) return null;
        var created = await InsertAsync(connection, transaction, id, request, ct);
        await audit.RecordAsync(connection, transaction, actor, AuditActions.KeyCreate, Entity, created.Id.ToString(), null, created, ct);
        await transaction.CommitAsync(ct);
        return created;
    }

    private async Task<CreatedKey> InsertAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid id, CreateKeyRequest request,
        CancellationToken ct)
    {
        var (key, prefix, hash) = ApiKeySecret.Create();
        var parameters = Settings(id, request, ct) with { Prefix = prefix, Hash = hash, CreatedAt = time.GetUtcNow().UtcDateTime };
        var view = await connection.QuerySingleAsync<KeyView>(InsertSql, parameters, transaction);
        return new CreatedKey(key, view);
    }

    public async Task<IReadOnlyList<KeyView>> ListAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<KeyView>($"SELECT {KeyView.Columns} FROM api_keys ORDER BY created_at DESC, id", ct);
        return rows.AsList();
    }

    /// <summary>
    /// One page of keys, newest first, with each key's spend on <paramref name="today"/>: <paramref name="search"/> matches the
    /// name, prefix or a tag (case-insensitive); <paramref name="status"/> is active, revoked, expired or null for all.
    /// </summary>
    public async Task<(IReadOnlyList<KeyListRow> Items, int Total)> SearchAsync(string? search, string? status, DateOnly today,
        int offset, int limit, CancellationToken ct)
    {
        const string Where = """
            WHERE (@search::text IS NULL OR k.name ILIKE @pattern OR k.prefix ILIKE @pattern
                   OR EXISTS (SELECT 1 FROM unnest(k.tags) t WHERE t ILIKE @pattern))
              AND (@status::text IS NULL
                   OR @status = 'revoked' AND k.revoked_at IS NOT NULL
                   OR @status = 'expired' AND k.revoked_at IS NULL AND k.expires_at <= @now
                   OR @status = 'active' AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > @now))
            """;
        var text = string.IsNullOrWhiteSpace(search) ? null : search.Trim();
        var parameters = new
        {
            search = text,
            pattern = text is null ? null : "%" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("%", "\\%", StringComparison.Ordinal)
                .Replace("_", "\\_", StringComparison.Ordinal) + "%",
            status,
            now = time.GetUtcNow().UtcDateTime,
            today,
            offset,
            limit,
            ct,
        };
        await using var connection = await db.OpenConnectionAsync(ct);
        var total = await connection.ExecuteScalarAsync<int>($"SELECT count(*) FROM api_keys k {Where}", parameters);
        var rows = await connection.QueryAsync<KeyListRow>($"""
            SELECT {KeyView.Columns}, coalesce(d.cost_usd, 0) AS spent_today_usd
            FROM api_keys k LEFT JOIN usage_daily d ON d.key_id = k.id AND d.day = @today::date
            {Where}
            ORDER BY k.created_at DESC, k.id OFFSET @offset LIMIT @limit
            """, parameters);
        return (rows.AsList(), total);
    }

    /// <summary>
    /// Gives a live key a new secret (same id, settings and history); the old secret stops working as soon as every
    /// instance has the NOTIFY. Null if the key is unknown or revoked.
    /// </summary>
    public async Task<CreatedKey?> RotateAsync(Guid id, string actor, CancellationToken ct)
    {
        var (key, prefix, hash) = ApiKeySecret.Create();
        await using var connection = await db.OpenConnectionAsync(ct);
        var before = await GetAsync(connection, id, ct);
        var view = await connection.QuerySingleOrDefaultAsync<KeyView>($"""
            UPDATE api_keys SET prefix = @prefix, key_hash = @hash WHERE id = @id AND revoked_at IS NULL RETURNING {KeyView.Columns}
            """, new { id, prefix, hash, ct });
        if (view is null) return null;
        var rotated = new CreatedKey(key, view);
        await audit.RecordAsync(connection, null, actor, AuditActions.KeyRotate, Entity, id.ToString(), before, rotated, ct);
        return rotated;
    }

    /// <summary>Revokes a key (idempotent: a revoked key keeps its first revocation time); null if unknown.</summary>
    public async Task<KeyView?> RevokeAsync(Guid id, string actor, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var before = await GetAsync(connection, id, ct);
        var revoked = await connection.QuerySingleOrDefaultAsync<KeyView>($"""
            UPDATE api_keys SET revoked_at = coalesce(revoked_at, @Now) WHERE id = @id RETURNING {KeyView.Columns}
            """, new { id, Now = time.GetUtcNow().UtcDateTime, ct });
        if (revoked is not null) await audit.RecordAsync(connection, null, actor, AuditActions.KeyRevoke, Entity, id.ToString(), before, revoked, ct);
        return revoked;
    }

    public async Task<KeyView?> GetAsync(Guid id, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await GetAsync(connection, id, ct);
    }

    private static Task<KeyView?> GetAsync(NpgsqlConnection connection, Guid id, CancellationToken ct) =>
        connection.QuerySingleOrDefaultAsync<KeyView>($"SELECT {KeyView.Columns} FROM api_keys WHERE id = @id", new { id, ct });

    /// <summary>Replaces a key's settings (not its secret); every instance reloads it on the NOTIFY. Null if unknown.</summary>
    public async Task<KeyView?> UpdateAsync(Guid id, CreateKeyRequest request, string actor, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var before = await GetAsync(connection, id, ct);
        var updated = await connection.QuerySingleOrDefaultAsync<KeyView>($"""
            UPDATE api_keys SET name = @Name, owner = @Owner, allowed_models = @AllowedModels, tags = @Tags, daily_budget_usd = @DailyBudgetUsd,
                hard_cap_usd = @HardCapUsd, downgrade_model = @DowngradeModel, rpm_limit = @RpmLimit, tpm_limit = @TpmLimit,
                cache_ttl_seconds = @CacheTtlSeconds, cache_scope = @CacheScope, budget_tiers = @BudgetTiers::jsonb, monthly_budget_usd = @MonthlyBudgetUsd,
                end_user_daily_budget_usd = @EndUserDailyBudgetUsd, injection_filter = @InjectionFilter, expires_at = @ExpiresAt
            WHERE id = @Id RETURNING {KeyView.Columns}
            """, Settings(id, request, ct));
        if (updated is not null) await audit.RecordAsync(connection, null, actor, AuditActions.KeyUpdate, Entity, id.ToString(), before, updated, ct);
        return updated;
    }

    /// <summary>The settable columns of a key, as given by a create or update request.</summary>
    private static KeyArgs Settings(Guid id, CreateKeyRequest request, CancellationToken ct) => new()
    {
        Id = id,
        Name = request.Name!.Trim(),
        Owner = string.IsNullOrWhiteSpace(request.Owner) ? null : request.Owner.Trim(),
        AllowedModels = (request.AllowedModels ?? []).Distinct(StringComparer.Ordinal).ToArray(),
        Tags = (request.Tags ?? []).Distinct(StringComparer.Ordinal).ToArray(),
        DailyBudgetUsd = request.DailyBudgetUsd,
        HardCapUsd = request.HardCapUsd,
        DowngradeModel = request.DowngradeModel,
        RpmLimit = request.RpmLimit,
        TpmLimit = request.TpmLimit,
        CacheTtlSeconds = request.CacheTtlSeconds,
        CacheScope = request.CacheScope ?? "key",
        MonthlyBudgetUsd = request.MonthlyBudgetUsd,
        EndUserDailyBudgetUsd = request.EndUserDailyBudgetUsd,
        InjectionFilter = request.InjectionFilter,
        BudgetTiers = System.Text.Json.JsonSerializer.Serialize(request.BudgetTiers?.ToList() ?? [], Persistence.StoredJson.Default.ListBudgetTier),
        ExpiresAt = request.ExpiresAt?.UtcDateTime,
        Ct = ct,
    };

    /// <summary>
    /// A key's parameters for Dapper.AOT's generated binder (a typed object: it cannot bind <see cref="DynamicParameters"/>):
    /// the settable columns, and for an insert the secret's prefix and hash and the creation time. Internal: the generated code cannot
    /// reach a private type.
    /// </summary>
    internal sealed record KeyArgs
    {
        public Guid Id { get; init; }
        public string Name { get; init; } = "";
        public string? Owner { get; init; }
        public string[] AllowedModels { get; init; } = [];
        public string[] Tags { get; init; } = [];
        public decimal? DailyBudgetUsd { get; init; }
        public decimal? HardCapUsd { get; init; }
        public string? DowngradeModel { get; init; }
        public int? RpmLimit { get; init; }
        public int? TpmLimit { get; init; }
        public int? CacheTtlSeconds { get; init; }
        public string CacheScope { get; init; } = "key";
        public decimal? MonthlyBudgetUsd { get; init; }
        public decimal? EndUserDailyBudgetUsd { get; init; }
        public string? InjectionFilter { get; init; }
        public string BudgetTiers { get; init; } = "[]";
        public DateTime? ExpiresAt { get; init; }
        public string? Prefix { get; init; }
        public byte[]? Hash { get; init; }
        public DateTime? CreatedAt { get; init; }
        public CancellationToken Ct { get; init; }
    }
}
