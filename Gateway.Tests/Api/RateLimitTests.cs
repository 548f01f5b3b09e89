using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Dapper;
using Gateway.Tests.Fixtures;
using Npgsql;

namespace Gateway.Tests.Api;

/// <summary>
/// A key's limits on one instance. Without Redis an instance keeps the limit divided by the live instances on its database, and
/// the run's shared database has several: these run on an instance alone on a database of its own, where its share is the whole
/// limit (limits across instances: <see cref="SharedLimitsTests"/>, <see cref="InstanceShareTests"/>).
/// </summary>
public sealed class RateLimitTests(RateLimitTests.AloneInstance alone) : IClassFixture<RateLimitTests.AloneInstance>
{
    public sealed class AloneInstance : IAsyncLifetime
    {
        public string Database { get; private set; } = "";

        public GatewayHost Host { get; private set; } = null!;

        public async ValueTask InitializeAsync()
        {
            Database = await TestEnvironment.Current.Postgres.CreateDatabaseAsync();
            Host = new GatewayHost(Database);
        }

        public ValueTask DisposeAsync() => Host is null ? ValueTask.CompletedTask : Host.DisposeAsync();
    }

    private GatewayHost Gateway => alone.Host;

    private const string Hello = """{"model":"mock","messages":[{"role":"user","content":"hi"}]}""";

    [Fact]
    public async Task RequestsPerMinute_OverTheLimit_Is429WithRetryAfterAndIsMetered()
    {
        var (key, keyId) = await Gateway.CreateKeyAsync(rpmLimit: 3);
        using var client = Gateway.Client(key);

        var answers = new List<HttpResponseMessage>();
        for (var i = 0; i < 4; i++) answers.Add(await client.PostAsync("/v1/chat/completions", Json(Hello)));

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], answers.Select(a => a.StatusCode));
        Assert.Equal(("3", "0"), (answers[2].Headers.GetValues("x-ratelimit-limit-requests").Single(), answers[2].Headers.GetValues("x-ratelimit-remaining-requests").Single()));
        var refused = answers[3];
        // 3 per minute refill one every 20 s: the bucket says how long until the next one.
        Assert.InRange(int.Parse(refused.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture), 1, 20);
        var error = (await refused.Content.ReadFromJsonAsync<JsonObject>())!["error"]!;
        Assert.Equal(("rate_limit_exceeded", "requests"), (error["code"]!.GetValue<string>(), error["type"]!.GetValue<string>()));
        var requestId = Guid.Parse(refused.Headers.GetValues("x-gateway-request-id").Single());
        await using var db = new NpgsqlConnection(alone.Database);
        var rows = await Eventually.UntilAsync(async () => (await db.QueryAsync<UsageRow>("SELECT * FROM usage_events WHERE request_id = @requestId",
            new { requestId })).AsList(), rows => rows.Count > 0, pause: TimeSpan.FromMilliseconds(50));
        var row = Assert.Single(rows);
        Assert.Equal((keyId, (short)429, 0m), (row.KeyId, row.Status, row.CostUsd));
    }

    [Fact]
    public async Task TokensPerMinute_CountThePromptAndTheOutputLimit()
    {
        var (key, _) = await Gateway.CreateKeyAsync(tpmLimit: 300);
        using var client = Gateway.Client(key);

        var small = await client.PostAsync("/v1/chat/completions", Json("""{"model":"mock","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"""));
        var second = await client.PostAsync("/v1/chat/completions", Json("""{"model":"mock","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"""));
        var third = await client.PostAsync("/v1/chat/completions", Json("""{"model":"mock","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"""));
        var huge = await client.PostAsync("/v1/chat/completions", Json("""{"model":"mock","max_tokens":5000,"messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (small.StatusCode, second.StatusCode));
        Assert.Equal("300", small.Headers.GetValues("x-ratelimit-limit-tokens").Single());
        Assert.Equal(HttpStatusCode.TooManyRequests, third.StatusCode); // ~110 tokens each: the third does not fit in 300
        Assert.Equal(HttpStatusCode.TooManyRequests, huge.StatusCode);
        Assert.Contains("more than this key's limit", (await huge.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["message"]!.GetValue<string>(),
            StringComparison.Ordinal);
    }

    [Fact]
    public async Task KeysWithoutLimits_GetNoRateLimitHeaders()
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json(Hello));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(response.Headers.Contains("x-ratelimit-limit-requests"));
    }
}
