using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Dapper;
using Gateway.Tests.Fixtures;
using Npgsql;

namespace Gateway.Tests.Metering;

/// <summary>
/// PostgreSQL goes away during a load run and the gateway restarts once: every request is answered, and the usage
/// table ends with exactly one row per request (its own cluster, so the rest of the run keeps its database).
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class OutageTests : IAsyncLifetime
{
    private readonly PostgresFixture _postgres = new(ownCluster: true);
    private readonly string _journal = Path.Combine(Path.GetTempPath(), "gw-journal-" + Guid.NewGuid().ToString("N")[..10]);

    public ValueTask InitializeAsync() => _postgres.InitializeAsync();

    private GatewayHost NewHost() => new(_postgres.ConnectionString, new()
    {
        ["Gateway:Metering:JournalDirectory"] = _journal,
        // A small queue, so the outage outlasts it and records live only in the journal for a while.
        ["Gateway:Metering:ChannelCapacity"] = "1000",
        ["Gateway:Metering:FlushTimeoutSeconds"] = "2",
        ["Gateway:Metering:JournalSegmentSeconds"] = "1",
    });

    private static StringContent Ask(int i) =>
        new($$"""{"model":"mock","messages":[{"role":"user","content":"question {{i}}"}]}""", Encoding.UTF8, "application/json");

    /// <summary>Sends requests from 8 workers (taking turns over the clients) until <paramref name="stop"/>; collects every answer's request id.</summary>
    private static async Task<int> LoadAsync(HttpClient[] clients, ConcurrentBag<Guid> answered, ConcurrentBag<HttpStatusCode> failures, CancellationToken stop)
    {
        var sent = 0;
        await Task.WhenAll(Enumerable.Range(0, 8).Select(async worker =>
        {
            var client = clients[worker % clients.Length];
            while (!stop.IsCancellationRequested)
            {
                var n = Interlocked.Increment(ref sent);
                using var response = await client.PostAsync("/v1/chat/completions", Ask(n), CancellationToken.None);
                // Answered, or cleanly refused (a capped key whose leased slice ran out while the database was away): metered either way.
                if (response.StatusCode is HttpStatusCode.OK or HttpStatusCode.TooManyRequests)
                    answered.Add(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
                else failures.Add(response.StatusCode);
            }
        }));
        return sent;
    }

    [Fact]
    public async Task DatabaseDownDuringLoad_AndARestart_EveryRequestAnsweredOrCleanlyRefused_ExactlyOneUsageRowEach()
    {
        var answered = new ConcurrentBag<Guid>();
        var failures = new ConcurrentBag<HttpStatusCode>();
        var key2 = "";
        Guid keyId, budgetedId;
        var sent = 0;
        var host = NewHost();
        try
        {
            (var key, keyId) = await host.CreateKeyAsync();
            // Budgets go on from what the instance knows: the slice it leased, the last spend it read.
            (key2, budgetedId) = await host.CreateKeyFromJsonAsync("""{"name":"budgeted","daily_budget_usd":50,"hard_cap_usd":100,"monthly_budget_usd":1000}""");
            using var client = host.Client(key);
            using var budgeted = host.Client(key2);
            // The budgeted key leases its slice of the cap before the outage (a capped key with no slice is refused while
            // the database is away: it cannot lease one).
            using (var first = await budgeted.PostAsync("/v1/chat/completions", Ask(0)))
            {
                Assert.Equal(HttpStatusCode.OK, first.StatusCode);
                answered.Add(Guid.Parse(first.Headers.GetValues("x-gateway-request-id").Single()));
                sent++;
            }
            using var stop = new CancellationTokenSource();
            var load = LoadAsync([client, budgeted], answered, failures, stop.Token);
            await Eventually.UntilAsync(() => Task.FromResult(answered.Count), n => n > 5); // the load runs before the outage
            await _postgres.StopServerAsync();
            await Task.Delay(30_000); // the 30 s: served from cached keys; records spool to the journal
            using (var probe = host.Client())
                Assert.Contains("Degraded", await probe.GetStringAsync("/health/ready"), StringComparison.Ordinal);
            await stop.CancelAsync();
            sent += await load;
        }
        finally
        {
            await host.DisposeAsync(); // the restart: its final flush cannot reach the database; the journal keeps the records
        }
        Assert.NotEmpty(Directory.GetFiles(_journal, "usage-*.jsonl"));

        await _postgres.StartServerAsync();
        NpgsqlConnection.ClearAllPools();
        await using (var second = NewHost())
        {
            using var admin = second.Admin();
            var key = (await second.CreateKeyAsync()).Key;
            using var client = second.Client(key);
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            var secondAnswered = new ConcurrentBag<Guid>();
            sent += await LoadAsync([client], secondAnswered, failures, stop.Token);

            Assert.Empty(failures);
            Assert.Equal(sent, answered.Count + secondAnswered.Count);
            // The restarted instance replays the first one's journal (idempotent on request id).
            var rows = await RowsAsync([keyId, budgetedId], answered.Count);
            Assert.Equal(answered.Count, rows.Count);
            Assert.Equal(rows.Count, rows.Distinct().Count());
            Assert.Equal(answered.OrderBy(g => g), rows.OrderBy(g => g));
            await using var db = new NpgsqlConnection(_postgres.ConnectionString);
            Assert.Equal(answered.Count, await db.ExecuteScalarAsync<long>(
                "SELECT sum(requests) FROM usage_daily WHERE key_id = ANY(@ids)", new { ids = new[] { keyId, budgetedId } }));
            await GatewayHost.WaitUntilAsync(() => Directory.GetFiles(_journal, "usage-*.jsonl").Length <= 1); // replayed files are removed
        }
    }

    private async Task<List<Guid>> RowsAsync(Guid[] keyIds, int expected)
    {
        var deadline = Environment.TickCount64 + 60_000;
        while (true)
        {
            await using var db = new NpgsqlConnection(_postgres.ConnectionString);
            var rows = (await db.QueryAsync<Guid>("SELECT request_id FROM usage_events WHERE key_id = ANY(@keyIds)", new { keyIds })).AsList();
            if (rows.Count >= expected || Environment.TickCount64 > deadline) return rows;
            await Task.Delay(200);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _postgres.DisposeAsync();
        if (Directory.Exists(_journal)) Directory.Delete(_journal, recursive: true);
    }
}
