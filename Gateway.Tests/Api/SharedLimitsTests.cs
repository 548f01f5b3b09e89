using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Dapper;
using Gateway.Core.Limits;
using Gateway.Core.Redis;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using StackExchange.Redis;

namespace Gateway.Tests.Api;

/// <summary>
/// Two API instances on their own database sharing a private redis-server, as behind a load balancer: a key's rate limits hold
/// once across both, a Redis outage leaves them serving on local shares (and saying so in /health/ready), and the response cache
/// lives in Redis with the same per-key scoping. The rate limits read a <see cref="FakeTimeProvider"/> that stands still unless a
/// test moves it, so no bucket refills while a test runs: counts are exact, never a race with the wall clock.
/// </summary>
public sealed class SharedLimitsTests(SharedLimitsTests.TwoInstances pair) : IClassFixture<SharedLimitsTests.TwoInstances>
{
    /// <summary>A private Redis, a fresh database (no other test's instances beat in it) and two instances on both.</summary>
    public sealed class TwoInstances : IAsyncLifetime
    {
        public RedisFixture Redis { get; private set; } = null!;

        public FakeTimeProvider Clock { get; } = new(new DateTimeOffset(2030, 6, 1, 12, 0, 0, TimeSpan.Zero));

        public string Database { get; private set; } = "";

        public GatewayHost One { get; private set; } = null!;

        public GatewayHost Two { get; private set; } = null!;

        public async ValueTask InitializeAsync()
        {
            Redis = await RedisFixture.StartAsync();
            Database = await TestEnvironment.Current.Postgres.CreateDatabaseAsync();
            One = Host();
            Two = Host();
            // Each counts the other once a heartbeat of the other is in (the first is at its start).
            await Eventually.TrueAsync(() => Live(One) == 2 && Live(Two) == 2, what: "both instances counting two live instances");
        }

        private GatewayHost Host() => new(Database, new()
        {
            ["ConnectionStrings:Redis"] = Redis.ConnectionString,
            ["Gateway:Cache:Store"] = "redis",
            ["Gateway:Budgets:LeaseHeartbeatSeconds"] = "2",
            ["Logging:LogLevel:Gateway.Core.Redis"] = "Information",
        }, services: s => s.AddKeyedSingleton<TimeProvider>(KeyRateLimiter.ClockKey, Clock));

        public static int Live(GatewayHost host) => host.Services.GetRequiredService<LiveInstances>().Count;

        public async ValueTask DisposeAsync()
        {
            try
            {
                if (One is not null) await One.DisposeAsync();
                if (Two is not null) await Two.DisposeAsync();
            }
            finally
            {
                if (Redis is not null) await Redis.DisposeAsync(); // never left running, whatever the hosts did
            }
        }
    }

    private GatewayHost One => pair.One;

    private GatewayHost Two => pair.Two;

    private const string Hello = """{"model":"mock","messages":[{"role":"user","content":"hi"}]}""";

    private async Task<string> KeyAsync(int? rpm = null, int? tpm = null)
    {
        var (key, _) = await One.CreateKeyAsync(rpmLimit: rpm, tpmLimit: tpm);
        await Two.WaitForKeyAsync(key);
        return key;
    }

    private static async Task<HttpStatusCode> SendAsync(GatewayHost host, string key, string body = Hello)
    {
        using var client = host.Client(key);
        using var response = await client.PostAsync("/v1/chat/completions", TestJson.Json(body));
        return response.StatusCode;
    }

    /// <summary>Sends <paramref name="count"/> requests, alternating between the instances, eight at a time; the statuses per instance.</summary>
    private async Task<(List<HttpStatusCode> One, List<HttpStatusCode> Two)> SpreadAsync(string key, int count)
    {
        var statuses = new HttpStatusCode[count];
        await Parallel.ForAsync(0, count, new ParallelOptions { MaxDegreeOfParallelism = 8 },
            async (i, _) => statuses[i] = await SendAsync(i % 2 == 0 ? One : Two, key));
        return ([.. statuses.Where((_, i) => i % 2 == 0)], [.. statuses.Where((_, i) => i % 2 == 1)]);
    }

    private static async Task<JsonObject> ReadyAsync(GatewayHost host)
    {
        using var client = host.Client();
        using var response = await client.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode); // degraded or not, the instance stays in rotation
        return (await response.Content.ReadFromJsonAsync<JsonObject>())!;
    }

    private static async Task<string> RedisModeAsync(GatewayHost host) =>
        (await ReadyAsync(host))["checks"]!["redis"]!["data"]!["mode"]!.GetValue<string>();

    private static int Count(GatewayHost host, int eventId) => host.Logs.Lines.Count(l => l.Contains($"[{eventId}]", StringComparison.Ordinal));

    private Task BothAsync(string mode) =>
        Eventually.TrueAsync(async () => await RedisModeAsync(One) == mode && await RedisModeAsync(Two) == mode, what: $"both instances {mode}");

    [Fact]
    public async Task RequestsPerMinute_200RequestsOverTwoInstances_AcceptTheLimitOnce()
    {
        await BothAsync("shared");
        var key = await KeyAsync(rpm: 60);

        var (one, two) = await SpreadAsync(key, 200);

        Assert.All(one.Concat(two), s => Assert.True(s is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, s.ToString()));
        Assert.InRange(one.Concat(two).Count(s => s == HttpStatusCode.OK), 59, 61); // the clock stands still: exactly 60
        Assert.True(one.Contains(HttpStatusCode.OK) && two.Contains(HttpStatusCode.OK), "both instances served some");

        // A second later one more request fits, on whichever instance asks first, and only one.
        pair.Clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.TooManyRequests], [await SendAsync(Two, key), await SendAsync(One, key)]);
    }

    [Fact]
    public async Task TokensPerMinute_AreSharedByBothInstances()
    {
        await BothAsync("shared");
        var key = await KeyAsync(tpm: 300);
        const string about110 = """{"model":"mock","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}""";

        // ~110 tokens each (the prompt plus the output limit, taken when the request starts): two fit in 300, the third does not.
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests],
            [await SendAsync(One, key, about110), await SendAsync(Two, key, about110), await SendAsync(One, key, about110)]);
    }

    [Fact]
    public async Task RedisStopped_InstancesServeOnLocalShares_ReadySaysDegraded_ThenShareAgainOnceItIsBack()
    {
        await BothAsync("shared");
        var key = await KeyAsync(rpm: 60);
        var downBefore = (Count(One, 2101), Count(Two, 2101));
        try
        {
            await pair.Redis.StopServerAsync();
            await BothAsync("degraded");

            var (one, two) = await SpreadAsync(key, 100);

            // Every request answered (never a 5xx for Redis); each instance keeps half the limit (two live instances).
            Assert.All(one.Concat(two), s => Assert.True(s is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, s.ToString()));
            Assert.Equal((30, 30), (one.Count(s => s == HttpStatusCode.OK), two.Count(s => s == HttpStatusCode.OK)));
            // Logged once per instance for the outage, not once per request.
            Assert.Equal((downBefore.Item1 + 1, downBefore.Item2 + 1), (Count(One, 2101), Count(Two, 2101)));
        }
        finally
        {
            await pair.Redis.StartServerAsync();
        }
        await BothAsync("shared");

        // Back on Redis (restarted empty): the key's full minute, once over both instances, although both local shares are spent.
        var (after1, after2) = await SpreadAsync(key, 100);
        Assert.InRange(after1.Concat(after2).Count(s => s == HttpStatusCode.OK), 59, 61);
        Assert.True(Count(One, 2102) >= 2 && Count(Two, 2102) >= 2, "the return to Redis is logged (at start and after the outage)");
    }

    private static string Ask() => $$"""{"model":"mock","temperature":0,"messages":[{"role":"user","content":"{{Guid.NewGuid():N}}"}]}""";

    private static async Task<(string? Cache, string Id)> AskAsync(GatewayHost host, string key, string body)
    {
        using var client = host.Client(key);
        using var response = await client.PostAsync("/v1/chat/completions", TestJson.Json(body));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var id = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["id"]!.GetValue<string>();
        return (response.Headers.TryGetValues("x-gateway-cache", out var c) ? c.Single() : null, id);
    }

    private async Task<string> CachingKeyAsync()
    {
        var (key, _, _) = await One.CreateKeyFromJsonAsync($$"""{"name":"redis-cache-{{Guid.NewGuid():N}}","cache_ttl_seconds":300}""");
        await Two.WaitForKeyAsync(key);
        return key;
    }

    [Fact]
    public async Task ResponseCache_InRedis_AnswerStoredThroughOneInstanceIsAHitOnTheOther()
    {
        await BothAsync("shared");
        var key = await CachingKeyAsync();
        var ask = Ask();

        var first = await AskAsync(One, key, ask);
        var there = await Eventually.UntilAsync(() => AskAsync(Two, key, ask), a => a.Cache == "hit", pause: TimeSpan.FromMilliseconds(50));

        Assert.Equal(("miss", "hit"), (first.Cache, there.Cache));
        Assert.Equal(first.Id, there.Id); // instance one's answer
        await using var db = new NpgsqlConnection(pair.Database);
        Assert.Equal(0L, await db.ExecuteScalarAsync<long>("SELECT count(*) FROM response_cache")); // in Redis, not PostgreSQL
        await using var redis = await ConnectionMultiplexer.ConnectAsync(pair.Redis.ConnectionString);
        Assert.NotEmpty(redis.GetServer(redis.GetEndPoints()[0]).Keys(pattern: "gw:cache:*"));
    }

    [Fact]
    public async Task ResponseCache_InRedis_OneKeysEntryIsNeverServedToAnother()
    {
        await BothAsync("shared");
        var (a, b) = (await CachingKeyAsync(), await CachingKeyAsync());
        var ask = Ask();
        var stored = await AskAsync(One, a, ask);
        await Eventually.UntilAsync(() => AskAsync(Two, a, ask), x => x.Cache == "hit", pause: TimeSpan.FromMilliseconds(50));

        var onTwo = await AskAsync(Two, b, ask);
        var onOne = await AskAsync(One, b, ask);

        Assert.Equal("miss", onTwo.Cache);
        Assert.NotEqual(stored.Id, onTwo.Id);
        Assert.NotEqual(stored.Id, onOne.Id); // b's own entry (stored meanwhile) or a miss, never a's answer
    }
}
