using Dapper;
using Gateway.Core.Limits;
using Gateway.Core.Metering;
using Gateway.Core.Providers;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Gateway.Core.Budgets;

/// <summary>
/// Gives back the hard-cap leases of instances that died, without letting their late spend pass a cap. Every
/// <see cref="BudgetOptions.LeaseHeartbeatSeconds"/>, off the request path, it:
/// (1) beats this instance's counter in <c>gateway_instances</c>;
/// (2) publishes this instance's claims (<see cref="BudgetLedger.PublishClaimsAsync"/>): per lease, the most it may still charge;
/// (3) reclaims the open leases of every instance whose counter has stood still for <see cref="BudgetOptions.ReclaimAfter"/> on
///     this instance's own clock: each is lowered to its claim and closed, so its unclaimed rest is free for every instance while
///     what the dead one had reserved or charged stays reserved for the rows its journal may still bring;
/// (4) once this start has replayed the usage journal an earlier run of the same directory left, closes that run's leases at
///     what they consumed (all of its rows are in PostgreSQL now), which frees the rest;
/// (5) counts the live instances (a heartbeat within the last three beats, on this instance's clock) for the rate limits' shares
///     without Redis (<see cref="LiveInstances"/>).
/// </summary>
public sealed partial class LeaseHeartbeat(
    BudgetLedger ledger, NpgsqlDataSource db, UsageJournal journal, IOptions<BudgetOptions> options, IOptions<UpstreamOptions> upstream,
    TimeProvider time, ILogger<LeaseHeartbeat> logger, LiveInstances? live = null) : IHostedService, IDisposable
{
    private readonly Dictionary<Guid, (long Beats, long SeenAt)> _seen = [];
    private readonly SemaphoreSlim _one = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly DateTimeOffset _startedAt = time.GetUtcNow();
    private bool _earlierRunsClosed;
    private Task _loop = Task.CompletedTask;

    private TimeSpan Every => TimeSpan.FromSeconds(options.Value.LeaseHeartbeatSeconds);

    /// <summary>Registers this instance before the web server listens (a lease it takes always has a known owner), then beats on.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await BeatAsync(cancellationToken);
        _loop = Task.Run(() => RunAsync(_stop.Token), CancellationToken.None);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync();
        try
        {
            await _loop.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Shutdown's time is up while a beat still waits on the database: it ends on its own, and a missed beat is the safe
            // side (claims stay as published). Never an exception out of the host's stop (seen in CI: the admin app's disposal).
        }
    }

    private async Task RunAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Every, time, ct);
                await BeatAsync(ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // The database is away (or slow): claims stay as they were, which is the safe side; try again next beat.
                Log.BeatFailed(logger, ex.GetType().Name, ex.Message);
            }
        }
    }

    private const string BeatSql = """
        INSERT INTO gateway_instances (id, journal_id, started_at, heartbeat_at, beats) VALUES (@id, @journal, @started, @now, 1)
        ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, beats = gateway_instances.beats + 1
        """;

    // Instances that hold open leases, with their counters; rows of long-gone instances that hold none are dropped.
    private const string OthersSql = """
        DELETE FROM gateway_instances AS i
        WHERE i.heartbeat_at < @forgetBefore AND NOT EXISTS (SELECT 1 FROM budget_leases AS l WHERE l.instance_id = i.id AND NOT l.closed);
        SELECT i.id, i.beats FROM gateway_instances AS i
        WHERE i.id <> @me AND EXISTS (SELECT 1 FROM budget_leases AS l WHERE l.instance_id = i.id AND NOT l.closed);
        """;

    // Only if the counter is still the one seen standing: an instance that beat meanwhile keeps its leases.
    private const string ReclaimSql = """
        WITH gone AS (
            SELECT l.id, l.amount - least(l.amount, coalesce(l.claimed, l.amount)) AS freed
            FROM budget_leases AS l
            JOIN gateway_instances AS i ON i.id = l.instance_id
            JOIN unnest(@ids::uuid[], @beats::bigint[]) AS s(id, beats) ON s.id = i.id AND s.beats = i.beats
            WHERE NOT l.closed
            ORDER BY l.id
            FOR UPDATE OF l)
        UPDATE budget_leases AS l SET amount = l.amount - gone.freed, closed = true, reclaimed_at = @now
        FROM gone WHERE l.id = gone.id
        RETURNING gone.freed
        """;

    // Every row of the earlier runs is stored: what they consumed is all they will ever consume.
    private const string CloseEarlierRunsSql = """
        UPDATE budget_leases AS l SET amount = l.consumed, closed = true, reclaimed_at = coalesce(l.reclaimed_at, @now)
        FROM gateway_instances AS i
        WHERE l.instance_id = i.id AND i.journal_id = @journal AND i.id <> @me AND (NOT l.closed OR l.amount > l.consumed)
        RETURNING l.id
        """;

    // This instance, and every other whose last beat is recent on this instance's clock (instances' clocks assumed within a beat of
    // each other, which NTP gives): a stopped instance drops out of the count three beats after its last.
    private const string LiveSql = """
        SELECT count(*) FROM gateway_instances WHERE id = @me OR heartbeat_at >= @since
        """;

    /// <summary>An instance that holds open leases, with its counter (<see cref="OthersSql"/>).</summary>
    internal sealed record Instance(Guid Id, long Beats);

    /// <summary>One heartbeat (see the class summary). The hosted loop calls it; tests may call it to step time by hand.</summary>
    public async Task BeatAsync(CancellationToken ct)
    {
        await _one.WaitAsync(ct);
        try
        {
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
            bounded.CancelAfter(TimeSpan.FromSeconds(30));
            var token = bounded.Token;
            var now = time.GetUtcNow();
            await using var connection = await db.OpenConnectionAsync(token);
            // (1) alive
            await connection.ExecuteAsync(BeatSql,
                new { id = ledger.InstanceId, journal = journal.Id, started = _startedAt, now, token });
            // (2) this instance's claims
            await ledger.PublishClaimsAsync(connection, token);
            // (3) instances whose counter stood still for the bound, on this instance's clock (instances need not agree on the time)
            var others = (await connection.QueryAsync<Instance>(OthersSql,
                new { me = ledger.InstanceId, forgetBefore = now.AddDays(-7), token })).AsList();
            var bound = options.Value.ReclaimAfter(upstream.Value);
            var stale = new List<(Guid Id, long Beats)>();
            foreach (var (id, beats) in others)
            {
                if (!_seen.TryGetValue(id, out var seen) || seen.Beats != beats) _seen[id] = (beats, time.GetTimestamp());
                else if (time.GetElapsedTime(seen.SeenAt) >= bound) stale.Add((id, beats));
            }
            foreach (var id in _seen.Keys.Where(id => !others.Exists(o => o.Id == id)).ToList()) _seen.Remove(id);
            if (stale.Count > 0)
            {
                var freed = (await connection.QueryAsync<decimal>(ReclaimSql,
                    new { ids = stale.Select(s => s.Id).ToArray(), beats = stale.Select(s => s.Beats).ToArray(), now, token })).AsList();
                if (freed.Count > 0) Log.Reclaimed(logger, stale.Count, freed.Count, freed.Sum(), (int)bound.TotalSeconds);
            }
            // (4) the earlier runs of this journal directory, once their files are replayed
            if (!_earlierRunsClosed && journal.Id is { } journalId && journal.EarlierRunsStored)
            {
                var closed = (await connection.QueryAsync<Guid>(CloseEarlierRunsSql,
                    new { journal = journalId, me = ledger.InstanceId, now, token })).AsList();
                if (closed.Count > 0) Log.EarlierRunsClosed(logger, closed.Count);
                _earlierRunsClosed = true;
            }
            // (5) live instances
            live?.Update((int)await connection.ExecuteScalarAsync<long>(LiveSql,
                new { me = ledger.InstanceId, since = now - 3 * Every, token }));
        }
        finally
        {
            _one.Release();
        }
    }

    public void Dispose()
    {
        _stop.Dispose();
        _one.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1401, Level = LogLevel.Warning, Message = "Budget lease heartbeat failed ({Error}: {Message}); trying again at the next one")]
        public static partial void BeatFailed(ILogger logger, string error, string message);

        [LoggerMessage(EventId = 1402, Level = LogLevel.Warning,
            Message = "Reclaimed {Leases} budget leases of {Instances} instances silent for {BoundSeconds} s: {FreedUsd} USD freed (their claims stay reserved)")]
        public static partial void Reclaimed(ILogger logger, int instances, int leases, decimal freedUsd, int boundSeconds);

        [LoggerMessage(EventId = 1403, Level = LogLevel.Information,
            Message = "Closed {Leases} budget leases of earlier runs of this usage journal at what they consumed (their journal is replayed)")]
        public static partial void EarlierRunsClosed(ILogger logger, int leases);
    }
}
