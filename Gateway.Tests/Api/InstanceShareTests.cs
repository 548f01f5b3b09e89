using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Limits;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Api;

/// <summary>
/// Without Redis (the default), two instances on their own database, each announcing itself with its heartbeat row: each enforces
/// half of a key's rate limits, so together they stay near the limit. The limits' clock is a <see cref="FakeTimeProvider"/> that
/// stands still, so no bucket refills during a test. And an instance whose Redis is set but never answers: it starts, serves, and
/// says it is degraded.
/// </summary>
public sealed class InstanceShareTests(InstanceShareTests.TwoInstances pair) : IClassFixture<InstanceShareTests.TwoInstances>
{
    public sealed class TwoInstances : IAsyncLifetime
    {
        public FakeTimeProvider Clock { get; } = new(new DateTimeOffset(2030, 6, 1, 12, 0, 0, TimeSpan.Zero));

        public GatewayHost One { get; private set; } = null!;

        public GatewayHost Two { get; private set; } = null!;

        public async ValueTask InitializeAsync()
        {
            var database = await TestEnvironment.Current.Postgres.CreateDatabaseAsync();
            One = Host(database);
            Two = Host(database);
            await Eventually.TrueAsync(() => Live(One) == 2 && Live(Two) == 2, what: "both instances counting two live instances");
        }

        private GatewayHost Host(string database) => new(database, new() { ["Gateway:Budgets:LeaseHeartbeatSeconds"] = "2" },
            services: s => s.AddKeyedSingleton<TimeProvider>(KeyRateLimiter.ClockKey, Clock));

        public static int Live(GatewayHost host) => host.Services.GetRequiredService<LiveInstances>().Count;

        public async ValueTask DisposeAsync()
        {
            if (One is not null) await One.DisposeAsync();
            if (Two is not null) await Two.DisposeAsync();
        }
    }

    [Fact]
    public async Task NoRedis_TwoLiveInstances_EachAllowsHalfTheLimit()
    {
        var (key, _) = await pair.One.CreateKeyAsync(rpmLimit: 60);
        await pair.Two.WaitForKeyAsync(key);
        using var ready = pair.One.Client();
        var redis = (await ready.GetFromJsonAsync<JsonObject>("/health/ready"))!["checks"]!["redis"]!;

        var accepted = new List<int>();
        foreach (var host in new[] { pair.One, pair.Two })
        {
            using var client = host.Client(key);
            var statuses = new List<HttpStatusCode>();
            for (var i = 0; i < 50; i++)
            {
                using var response = await client.PostAsync("/v1/chat/completions",
                    TestJson.Json("""{"model":"mock","messages":[{"role":"user","content":"hi"}]}"""));
                statuses.Add(response.StatusCode);
            }
            Assert.All(statuses, s => Assert.True(s is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, s.ToString()));
            accepted.Add(statuses.Count(s => s == HttpStatusCode.OK));
        }

        Assert.Equal([30, 30], accepted);
        Assert.Equal(("Healthy", "off", 2), (redis["status"]!.GetValue<string>(), redis["data"]!["mode"]!.GetValue<string>(),
            redis["data"]!["live_instances"]!.GetValue<int>()));
    }

    [Fact]
    public async Task RedisUnreachableFromTheStart_InstanceStartsServesAndSaysDegraded()
    {
        // The Gateway:Redis spelling, at a port nothing listens on; the cache set to Redis too.
        await using var host = new GatewayHost(TestEnvironment.Current.Postgres.ConnectionString, new()
        {
            ["Gateway:Redis"] = $"127.0.0.1:{PostgresFixture.FreePort()}",
            ["Gateway:Cache:Store"] = "redis",
        });
        var (key, _, _) = await host.CreateKeyFromJsonAsync($$"""{"name":"no-redis-{{Guid.NewGuid():N}}","rpm_limit":100,"cache_ttl_seconds":300}""");
        using var client = host.Client(key);
        const string ask = """{"model":"mock","temperature":0,"messages":[{"role":"user","content":"same question"}]}""";

        var caches = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            using var response = await client.PostAsync("/v1/chat/completions", TestJson.Json(ask));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            caches.Add(response.Headers.GetValues("x-gateway-cache").Single());
        }
        using var probe = host.Client();
        using var ready = await probe.GetAsync("/health/ready");
        var redis = (await ready.Content.ReadFromJsonAsync<JsonObject>())!["checks"]!["redis"]!;

        Assert.Equal(["miss", "miss", "miss"], caches); // nothing stored while Redis is away, and no request failed for it
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal(("Degraded", "degraded"), (redis["status"]!.GetValue<string>(), redis["data"]!["mode"]!.GetValue<string>()));
        Assert.Single(host.Logs.Lines, l => l.Contains("[2101]", StringComparison.Ordinal)); // once, not per request or probe
    }
}
