using System.Globalization;
using Dapper;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Gateway.Core.Metering;

/// <summary>
/// Drops whole day partitions of <c>usage_events</c> older than <see cref="UsageRetentionOptions.RetentionDays"/> (never a
/// row-by-row DELETE on a day partition), keeping the daily aggregates (<c>usage_daily</c>, <c>usage_daily_models</c>) that
/// budgets and spend reports read. A partition is dropped only when every group of its rows is counted in both aggregates (the
/// usage writer updates them in the transaction that stores the rows, so this holds unless an aggregate was edited or a row
/// predates migration 0016): otherwise it is kept and a warning logged. Expired rows of the default partition (rows whose day
/// had no partition when they were stored) are deleted the same way, after the same check.
/// <para>Several instances may run it at once: each drop is one transaction under a transaction-scoped advisory lock (which
/// also works behind a pooler in transaction mode), re-checks that the partition still exists, and waits at most
/// <see cref="LockWait"/> for the table lock, so a long report delays it to the next pass instead of queueing the writers.</para>
/// </summary>
public sealed partial class UsageRetention(NpgsqlDataSource db, IOptions<UsageRetentionOptions> options, TimeProvider time,
    ILogger<UsageRetention> logger) : BackgroundService
{
    // Arbitrary but fixed: every gateway instance takes the same lock (the migrator's is ...7901).
    private const long LockKey = 0x6761_7465_7761_7902;

    /// <summary>The most a drop waits for its lock on <c>usage_events</c> (writers and readers queue behind a waiting drop).</summary>
    public static readonly TimeSpan LockWait = TimeSpan.FromSeconds(5);

    /// <summary>What one pass did.</summary>
    public sealed record Pass(IReadOnlyList<DateOnly> Dropped, IReadOnlyList<DateOnly> Kept, long DefaultRowsDeleted, bool OtherInstanceBusy);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.Value.RetentionDays == 0) return;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RunOnceAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // The database is away or busy: nothing is lost by waiting for the next pass.
                Log.PassFailed(logger, ex.GetType().Name, ex.Message);
            }
            try
            {
                await Task.Delay(TimeSpan.FromMinutes(options.Value.RetentionCheckMinutes), time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Drops every expired day partition (oldest first) and the default partition's expired rows; a no-op when retention is off.</summary>
    public async Task<Pass> RunOnceAsync(CancellationToken ct)
    {
        var days = options.Value.RetentionDays;
        if (days == 0) return new Pass([], [], 0, false);
        var today = DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);
        var cutoff = today.AddDays(-days); // partitions of days before it go
        var dropped = new List<DateOnly>();
        var kept = new List<DateOnly>();
        foreach (var (name, day) in await ListPartitionsAsync(ct))
        {
            if (day >= cutoff) continue;
            switch (await DropAsync(name, day, ct))
            {
                case Outcome.Done: dropped.Add(day); break;
                case Outcome.Incomplete: kept.Add(day); break;
                case Outcome.Busy: return new Pass(dropped, kept, 0, true);
                case Outcome.Gone: break;
            }
        }
        var (outcome, deleted) = await PruneDefaultAsync(cutoff, ct);
        return new Pass(dropped, kept, deleted, outcome == Outcome.Busy);
    }

    private enum Outcome { Done, Gone, Incomplete, Busy }

    private const string PartitionsSql = """
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'usage_events'::regclass AND c.relname ~ '^usage_events_[0-9]{8}$'
        ORDER BY c.relname
        """;

    private async Task<List<(string Name, DateOnly Day)>> ListPartitionsAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var names = await connection.QueryAsync<string>(PartitionsSql, ct);
        return [.. names.Select(n => (n, DateOnly.ParseExact(n["usage_events_".Length..], "yyyyMMdd", CultureInfo.InvariantCulture)))];
    }

    // Groups of rows (as each aggregate groups them; see migrations/0016) that the aggregate does not count in full. An
    // aggregate also counts the rows of neighbouring partitions (a budget day in another time zone spans two UTC days) and of
    // partitions already dropped, so "counts at least as many" is the test, not equality.
    private static string MissingSql(string rows) => $"""
        SELECT (SELECT count(*) FROM (SELECT key_id, day, count(*) AS n FROM {rows} GROUP BY 1, 2) AS p
                LEFT JOIN usage_daily AS d USING (key_id, day) WHERE d.requests IS NULL OR d.requests < p.n)
             + (SELECT count(*) FROM (SELECT day, key_id, coalesce(provider, '(none)') AS provider,
                                             coalesce(served_model, asked_model, '(none)') AS model, count(*) AS n
                                      FROM {rows} GROUP BY 1, 2, 3, 4) AS p
                LEFT JOIN usage_daily_models AS m USING (day, key_id, provider, model) WHERE m.requests IS NULL OR m.requests < p.n)
        """;

    private async Task<Outcome> DropAsync(string name, DateOnly day, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        if (!await TryLockAsync(connection, tx, ct)) return Outcome.Busy;
        // Another instance may have dropped it since the list was read (its drop committed before this lock was granted).
        var exists = await connection.ExecuteScalarAsync<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(@name) AND inhparent = 'usage_events'::regclass)",
            new { name, ct }, tx);
        if (!exists) return Outcome.Gone;
        var quoted = $"\"{name}\""; // matched ^usage_events_[0-9]{8}$: nothing to escape
        var missing = await connection.ExecuteScalarAsync<long>(MissingSql(quoted), ct, tx);
        if (missing > 0)
        {
            Log.AggregatesIncomplete(logger, day, missing);
            return Outcome.Incomplete;
        }
        try
        {
            await connection.ExecuteAsync($"DROP TABLE {quoted}", ct, tx);
            await tx.CommitAsync(ct);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.LockNotAvailable)
        {
            Log.LockTimeout(logger, day);
            return Outcome.Busy;
        }
        Log.Dropped(logger, day);
        return Outcome.Done;
    }

    private async Task<(Outcome, long)> PruneDefaultAsync(DateOnly cutoff, CancellationToken ct)
    {
        var before = cutoff.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc);
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        if (!await TryLockAsync(connection, tx, ct)) return (Outcome.Busy, 0);
        var rows = $"(SELECT * FROM usage_events_default WHERE occurred_at < '{before:yyyy-MM-dd}T00:00:00Z'::timestamptz) AS e";
        var missing = await connection.ExecuteScalarAsync<long>(MissingSql(rows), ct, tx);
        if (missing > 0)
        {
            Log.DefaultIncomplete(logger, missing);
            return (Outcome.Incomplete, 0);
        }
        var deleted = await connection.ExecuteAsync("DELETE FROM usage_events_default WHERE occurred_at < @before", new { before, ct }, tx);
        await tx.CommitAsync(ct);
        if (deleted > 0) Log.DefaultPruned(logger, deleted, cutoff);
        return (Outcome.Done, deleted);
    }

    private static async Task<bool> TryLockAsync(NpgsqlConnection connection, NpgsqlTransaction tx, CancellationToken ct)
    {
        if (!await connection.ExecuteScalarAsync<bool>("SELECT pg_try_advisory_xact_lock(@LockKey)", new { LockKey, ct }, tx))
            return false;
        await connection.ExecuteAsync($"SET LOCAL lock_timeout = '{(int)LockWait.TotalMilliseconds}ms'", ct, tx);
        return true;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1330, Level = LogLevel.Information, Message = "Usage retention dropped the partition of {Day}")]
        public static partial void Dropped(ILogger logger, DateOnly day);

        [LoggerMessage(EventId = 1331, Level = LogLevel.Warning, Message = "Usage retention kept the partition of {Day}: {Groups} groups of its rows are not fully counted in usage_daily or usage_daily_models")]
        public static partial void AggregatesIncomplete(ILogger logger, DateOnly day, long groups);

        [LoggerMessage(EventId = 1332, Level = LogLevel.Information, Message = "Usage retention deleted {Rows} rows before {Cutoff} from the default partition")]
        public static partial void DefaultPruned(ILogger logger, int rows, DateOnly cutoff);

        [LoggerMessage(EventId = 1333, Level = LogLevel.Warning, Message = "Usage retention kept the default partition's expired rows: {Groups} groups are not fully counted in the daily aggregates")]
        public static partial void DefaultIncomplete(ILogger logger, long groups);

        [LoggerMessage(EventId = 1334, Level = LogLevel.Information, Message = "Usage retention could not lock usage_events in time to drop the partition of {Day}; trying again next pass")]
        public static partial void LockTimeout(ILogger logger, DateOnly day);

        [LoggerMessage(EventId = 1335, Level = LogLevel.Warning, Message = "Usage retention pass failed ({Error}: {Message}); trying again next pass")]
        public static partial void PassFailed(ILogger logger, string error, string message);
    }
}
