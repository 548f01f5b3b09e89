using Gateway.Admin.Data;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Gateway.Admin.Account;

/// <summary>
/// At start-up, after Core's migrations: when the app has no user yet, creates the first Admin
/// (<c>Admin:FirstAdminEmail</c>) and prints its password once.
/// </summary>
/// <remarks>
/// Admin apps that start together on a fresh database (two replicas, or two test classes) would each see "no user yet" and
/// each insert the first Admin; the loser's insert hits the unique user name and its start-up fails. A PostgreSQL advisory
/// lock, held on a connection of its own around the check and the insert, makes them take turns: the second one sees the
/// user and creates nothing, so exactly one Admin is created and one password printed.
/// </remarks>
public sealed class AdminSeeder(IServiceProvider services, NpgsqlDataSource db, IOptions<AdminOptions> options) : IHostedService
{
    // Arbitrary but fixed, and not the Migrator's key: every admin app instance takes the same lock.
    private const long LockKey = 0x6761_7465_7761_7902;

    /// <summary>Whether this instance created the first Admin (and printed its password).</summary>
    public bool CreatedFirstAdmin { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var lockConnection = await db.OpenConnectionAsync(cancellationToken);
        await LockAsync(lockConnection, "SELECT pg_advisory_lock($1)", cancellationToken);
        try
        {
            await using var scope = services.CreateAsyncScope();
            var users = scope.ServiceProvider.GetRequiredService<AdminUsers>();
            if (await users.AnyAsync(cancellationToken)) return;
            var email = options.Value.FirstAdminEmail;
            var (password, error) = await users.CreateAsync(email, AdminRoles.Admin);
            CreatedFirstAdmin = error is null;
            await (error is null
                ? Console.Out.WriteLineAsync($"Admin user: {email}  password: {password} (shown once: keep it)")
                : Console.Error.WriteLineAsync($"First admin not created: {error}"));
        }
        finally
        {
            await LockAsync(lockConnection, "SELECT pg_advisory_unlock($1)", CancellationToken.None);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static async Task LockAsync(NpgsqlConnection connection, string sql, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(sql, connection) { Parameters = { new() { Value = LockKey } } };
        await command.ExecuteNonQueryAsync(ct);
    }
}
