using System.Security.Cryptography;
using System.Text;
using Dapper;
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
/// stored as a SHA-256 hash. Checked against the database on each admin call (the admin API is not a hot path), so a
/// revocation applies to the next call on every instance.
/// </summary>
public sealed class AdminTokens(NpgsqlDataSource db, TimeProvider time)
{
    public const string Scheme = "gwa-";

    public async Task<(string Token, AdminTokenView View)?> CreateAsync(string name, CancellationToken ct)
    {
        var token = Scheme + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var now = time.GetUtcNow();
        await using var connection = await db.OpenConnectionAsync(ct);
        var view = await connection.QuerySingleOrDefaultAsync<AdminTokenView>(new CommandDefinition("""
            INSERT INTO admin_tokens (id, name, prefix, token_hash, created_at) VALUES (@id, @name, @prefix, @hash, @now)
            ON CONFLICT (name) DO NOTHING
            RETURNING id, name, prefix, created_at, revoked_at
            """, new { id = Guid.CreateVersion7(now), name, prefix = token[..12], hash = Hash(token), now = now.UtcDateTime }, cancellationToken: ct));
        return view is null ? null : (token, view);
    }

    public async Task<IReadOnlyList<AdminTokenView>> ListAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<AdminTokenView>(new CommandDefinition(
            "SELECT id, name, prefix, created_at, revoked_at FROM admin_tokens ORDER BY created_at, id", cancellationToken: ct))).AsList();
    }

    public async Task<AdminTokenView?> RevokeAsync(Guid id, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.QuerySingleOrDefaultAsync<AdminTokenView>(new CommandDefinition("""
            UPDATE admin_tokens SET revoked_at = coalesce(revoked_at, @now) WHERE id = @id RETURNING id, name, prefix, created_at, revoked_at
            """, new { id, now = time.GetUtcNow().UtcDateTime }, cancellationToken: ct));
    }

    /// <summary>The name of the live token <paramref name="presented"/> is, or null.</summary>
    public async Task<string?> NameOfAsync(string presented, CancellationToken ct)
    {
        if (!presented.StartsWith(Scheme, StringComparison.Ordinal) || presented.Length > 100) return null;
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.ExecuteScalarAsync<string?>(new CommandDefinition(
            "SELECT name FROM admin_tokens WHERE token_hash = @hash AND revoked_at IS NULL", new { hash = Hash(presented) }, cancellationToken: ct));
    }

    private static byte[] Hash(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));
}
