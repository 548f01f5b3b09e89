using System.Collections.Frozen;
using System.Security.Cryptography;
using Dapper;
using Gateway.Core.Audit;
using Gateway.Core.Keys;
using Npgsql;

namespace Gateway.Core.Admin;

/// <summary>An admin token as listed (never its secret).</summary>
public sealed record AdminTokenView
{
    public Guid Id { get; init; }
    public string Name { get; init; } = "";
    public string Prefix { get; init; } = "";
    public DateTime CreatedAt { get; init; }
    public DateTime? RevokedAt { get; init; }
}

/// <summary>
/// Named bearer tokens for the admin REST API besides the master key: <c>gwa-</c> + 32 random bytes (base64url),
/// stored as a SHA-256 hash. Checked against an in-memory snapshot of the live tokens, like gateway keys (reloaded by the
/// <see cref="Persistence.ChangeListener"/> on NOTIFY, and at once on the instance that made the change), so a made-up
/// token costs no database round trip: a flood of them cannot exhaust the connection pool. Issuing and revoking are recorded
/// in the audit log under the actor the caller names.
/// </summary>
public sealed class AdminTokens(NpgsqlDataSource db, AuditLog audit, TimeProvider time)
{
    public const string Scheme = "gwa-";

    private const string Entity = "admin_token";
    private const string Columns = "id, name, prefix, created_at, revoked_at";

    private FrozenDictionary<UInt128, (byte[] Hash, string Name)> _live = FrozenDictionary<UInt128, (byte[] Hash, string Name)>.Empty;

    /// <summary>Loads the live (unrevoked) tokens' hashes and names.</summary>
    public async Task ReloadAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<LiveToken>("SELECT name, token_hash FROM admin_tokens WHERE revoked_at IS NULL", ct);
        Interlocked.Exchange(ref _live, rows.ToFrozenDictionary(r => ApiKeySecret.Slot(r.TokenHash), r => (r.TokenHash, r.Name)));
    }

    public async Task<(string Token, AdminTokenView View)?> CreateAsync(string name, string actor, CancellationToken ct)
    {
        var token = Scheme + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var now = time.GetUtcNow();
        await using var connection = await db.OpenConnectionAsync(ct);
        var view = await connection.QuerySingleOrDefaultAsync<AdminTokenView>($"""
            INSERT INTO admin_tokens (id, name, prefix, token_hash, created_at) VALUES (@id, @name, @prefix, @hash, @now)
            ON CONFLICT (name) DO NOTHING
            RETURNING {Columns}
            """, new { id = Guid.CreateVersion7(now), name, prefix = token[..12], hash = ApiKeySecret.Hash(token), now = now.UtcDateTime, ct });
        if (view is null) return null;
        await ReloadAsync(ct); // this instance at once; the others on NOTIFY
        await audit.RecordAsync(connection, null, actor, AuditActions.AdminTokenCreate, Entity, view.Id.ToString(), null, view, ct);
        return (token, view);
    }

    public async Task<IReadOnlyList<AdminTokenView>> ListAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<AdminTokenView>($"SELECT {Columns} FROM admin_tokens ORDER BY created_at, id", ct)).AsList();
    }

    public async Task<AdminTokenView?> RevokeAsync(Guid id, string actor, CancellationToken ct)
    {
        AdminTokenView? revoked;
        await using (var connection = await db.OpenConnectionAsync(ct))
        {
            revoked = await connection.QuerySingleOrDefaultAsync<AdminTokenView>($"""
                UPDATE admin_tokens SET revoked_at = coalesce(revoked_at, @now) WHERE id = @id RETURNING {Columns}
                """, new { id, now = time.GetUtcNow().UtcDateTime, ct });
        }
        if (revoked is null) return null;
        await ReloadAsync(ct); // refused here from the next call; elsewhere on NOTIFY
        await audit.RecordAsync(actor, AuditActions.AdminTokenRevoke, Entity, id.ToString(), null, revoked, ct);
        return revoked;
    }

    /// <summary>The name of the live token <paramref name="presented"/> is, or null. In memory only.</summary>
    public string? NameOf(ReadOnlySpan<char> presented)
    {
        Span<byte> hash = stackalloc byte[32];
        if (!presented.StartsWith(Scheme, StringComparison.Ordinal) || !ApiKeySecret.TryHash(presented, hash)) return null;
        return _live.TryGetValue(ApiKeySecret.Slot(hash), out var token) && CryptographicOperations.FixedTimeEquals(token.Hash, hash)
            ? token.Name : null;
    }

#pragma warning disable CA1812 // instantiated by Dapper
    /// <summary>
    /// A live token's row for the snapshot: a type, not a value tuple (Dapper.AOT reads no tuples), and internal (its generated
    /// code cannot reach a private type).
    /// </summary>
    internal sealed record LiveToken
    {
        public string Name { get; init; } = "";
        public byte[] TokenHash { get; init; } = [];
    }
#pragma warning restore CA1812
}
