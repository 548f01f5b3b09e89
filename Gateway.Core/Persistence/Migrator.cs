using Dapper;
using DbUp;
using DbUp.Postgresql;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Gateway.Core.Persistence;

/// <summary>
/// Applies <c>migrations/*.sql</c> (embedded in this assembly) with DbUp: in file-name order, one
/// transaction per file, each recorded in DbUp's <c>schemaversions</c> journal so it runs once. A
/// PostgreSQL advisory lock makes instances that start together take turns; a failed file stops start-up. Runs on
/// <see cref="DirectDatabase"/> (past any pooler).
/// </summary>
public sealed partial class Migrator(DirectDatabase direct, ILogger<Migrator> logger)
{
    // Arbitrary but fixed: every gateway instance takes the same lock.
    private const long LockKey = 0x6761_7465_7761_7901;

    /// <summary>Migrates the database <paramref name="db"/> connects to (tools and tests; no pooler in between).</summary>
    public Migrator(NpgsqlDataSource db, ILogger<Migrator> logger) : this(new DirectDatabase(db, null), logger) { }

    public async Task MigrateAsync(CancellationToken ct)
    {
        // The lock is held by a session (a transaction per file would not cover the whole run): behind a pooler in transaction
        // mode it must be a direct connection, or it is taken on one server connection and "released" on another.
        var db = direct.DataSource;
        await using var lockConnection = await db.OpenConnectionAsync(ct);
        await lockConnection.ExecuteAsync("SELECT pg_advisory_lock(@LockKey)", new { LockKey, ct });
        try
        {
            var upgrader = DeployChanges.To
                .PostgresqlDatabase(new PostgresqlConnectionManager(db))
                .WithScriptsEmbeddedInAssembly(typeof(Migrator).Assembly,
                    name => name.StartsWith("migrations.", StringComparison.Ordinal) && name.EndsWith(".sql", StringComparison.Ordinal))
                .WithTransactionPerScript()
                .WithVariablesDisabled()
                .LogTo(logger)
                .Build();
            var result = await Task.Run(upgrader.PerformUpgrade, ct);
            if (!result.Successful)
                throw new InvalidOperationException($"Migration {result.ErrorScript?.Name} failed: {result.Error?.Message}", result.Error);
            var applied = result.Scripts.Count();
            Log.Migrated(logger, applied);
        }
        finally
        {
            await lockConnection.ExecuteAsync("SELECT pg_advisory_unlock(@LockKey)", new { LockKey });
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Database schema is current ({Applied} migrations applied now)")]
        public static partial void Migrated(ILogger logger, int applied);
    }
}
