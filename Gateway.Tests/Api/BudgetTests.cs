using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Dapper;
using Gateway.Tests.Fixtures;
using Npgsql;

namespace Gateway.Tests.Api;

public sealed class BudgetTests(TestEnvironment env, BudgetTests.ClockedHost clocked) : IClassFixture<BudgetTests.ClockedHost>
{
    private GatewayHost Gateway => env.Gateway;

    /// <summary>
    /// A host whose clock the tests move past the 2 s spend re-read of soft budgets, once the spend is stored,
    /// instead of sleeping 2 s and hoping the usage writer was done by then.
    /// </summary>
    public sealed class ClockedHost : IAsyncDisposable
    {
        public SkippableClock Clock { get; } = new();

        public GatewayHost Host { get; }

        public ClockedHost() => Host = new GatewayHost(TestEnvironment.Current.Postgres.ConnectionString, time: Clock);

        public ValueTask DisposeAsync() => Host.DisposeAsync();
    }

    /// <summary>Waits until the key's first <paramref name="requests"/> requests are stored, then moves the clock past the spend re-read.</summary>
    private async Task StoredThenRereadAsync(Guid keyId, int requests)
    {
        await Eventually.TrueAsync(async () =>
        {
            await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
            return await db.ExecuteScalarAsync<long>("SELECT coalesce(sum(requests), 0) FROM usage_daily WHERE key_id = @keyId", new { keyId }) >= requests;
        }, what: $"{requests} stored request(s) of key {keyId}");
        clocked.Clock.Skip(TimeSpan.FromSeconds(3)); // each instance re-reads a spend at most every 2 s
    }

    private const string Short = """{"model":"mock","max_tokens":30,"messages":[{"role":"user","content":"hi"}]}""";

    private async Task<decimal> SpentAsync(Guid keyId, int rows)
    {
        await Eventually.UntilAsync(() => env.UsageRowsForKeyAsync(keyId), r => r.Count >= rows, pause: TimeSpan.FromMilliseconds(50));
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        return await db.ExecuteScalarAsync<decimal>("SELECT coalesce(sum(cost_usd), 0) FROM usage_events WHERE key_id = @keyId", new { keyId });
    }

    [Fact]
    public async Task HardCap_TwoInstancesUnderConcurrentLoad_NeverSpendPastIt()
    {
        const decimal cap = 0.0008m; // a dozen mock answers
        await using var second = new GatewayHost(env.Postgres.ConnectionString);
        var (key, keyId) = await Gateway.CreateKeyFromJsonAsync($$"""{"name":"capped","hard_cap_usd":{{cap}}}""");
        await GatewayHost.WaitUntilAsync(() => second.Services.GetService(typeof(Gateway.Core.Keys.KeyCache)) is Gateway.Core.Keys.KeyCache c
            && c.Authenticate(key).Key is not null);
        using var one = Gateway.Client(key);
        using var two = second.Client(key);

        var responses = await Task.WhenAll(Enumerable.Range(0, 40).Select(i =>
            (i % 2 == 0 ? one : two).PostAsync("/v1/chat/completions", Json(Short))));

        Assert.All(responses, r => Assert.True(r.StatusCode is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, r.StatusCode.ToString()));
        var served = responses.Count(r => r.StatusCode == HttpStatusCode.OK);
        Assert.InRange(served, 5, 39);
        var refused = responses.First(r => r.StatusCode == HttpStatusCode.TooManyRequests);
        Assert.Equal("insufficient_quota", (await refused.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["code"]!.GetValue<string>());
        var spent = await SpentAsync(keyId, 40);
        Assert.True(spent <= cap, $"spent {spent} past the cap {cap}");
        Assert.True(spent > 0);
    }

    [Fact]
    public async Task DailyBudgetReached_DowngradesToTheKeysCheaperModelAndSaysSo()
    {
        var cheap = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", inputPrice: 0.1m, outputPrice: 0.2m, cachedPrice: 0.05m);
        var (key, keyId) = await Gateway.CreateKeyFromJsonAsync($$"""{"name":"thrifty","daily_budget_usd":0.0001,"downgrade_model":"{{cheap}}"}""");
        using var client = Gateway.Client(key);

        // The daily budget is soft: this instance re-reads the day's spend every 2 s, once the writer stored it.
        var answers = new List<HttpResponseMessage>();
        await Eventually.UntilAsync(async () =>
        {
            answers.Add(await client.PostAsync("/v1/chat/completions", Json(Short)));
            return answers[^1];
        }, a => a.Headers.Contains("x-gateway-downgraded-from"), pause: TimeSpan.FromMilliseconds(200));

        Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.StatusCode));
        Assert.False(answers[0].Headers.Contains("x-gateway-downgraded-from"));
        Assert.Equal("0.0001", answers[0].Headers.GetValues("x-gateway-budget-remaining").Single());
        var downgraded = answers.Last();
        Assert.Equal(("mock", "gpt-4o-mini-2024-07-18"), (downgraded.Headers.GetValues("x-gateway-downgraded-from").Single(),
            downgraded.Headers.GetValues("x-gateway-model").Single()));
        Assert.Equal("0", downgraded.Headers.GetValues("x-gateway-budget-remaining").Single());
        var row = await env.WaitForUsageAsync(Guid.Parse(downgraded.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal(("mock", "mock", keyId), (row.DowngradedFrom, row.AskedModel, row.KeyId));
    }

    [Fact]
    public async Task BudgetTiers_DowngradeStepByStep()
    {
        var host = clocked.Host;
        var cheaper = await host.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", inputPrice: 0.5m, outputPrice: 1m, cachedPrice: 0.25m);
        var cheapest = await host.AddModelAsync(env.Upstream.BaseUrl, "deepseek-chat", inputPrice: 0.1m, outputPrice: 0.2m, cachedPrice: 0.05m);
        // A mock answer costs ~$0.000053 (26% of the budget), a cheaper one ~$0.000016 (8%).
        var (key, keyId) = await host.CreateKeyFromJsonAsync($$"""
            {"name":"tiered","daily_budget_usd":0.0002,
             "budget_tiers":[{"at_percent":20,"model":"{{cheaper}}"},{"at_percent":30,"model":"{{cheapest}}"}]}
            """);
        using var client = host.Client(key);

        var models = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var response = await client.PostAsync("/v1/chat/completions", Json(Short));
            models.Add(response.Headers.GetValues("x-gateway-model").Single());
            await StoredThenRereadAsync(keyId, i + 1);
        }

        Assert.Equal(["mock-1", "gpt-4o-mini-2024-07-18", "deepseek-chat-2024-07-18"], models);
    }

    [Fact]
    public async Task MonthlyBudgetSpent_RefusesOrDowngrades()
    {
        var host = clocked.Host;
        var cheaper = await host.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", inputPrice: 0.5m, outputPrice: 1m, cachedPrice: 0.25m);
        var (strict, strictId) = await host.CreateKeyFromJsonAsync("""{"name":"monthly","monthly_budget_usd":0.00001}""");
        var (lenient, lenientId) = await host.CreateKeyFromJsonAsync($$"""{"name":"monthly-down","monthly_budget_usd":0.00001,"downgrade_model":"{{cheaper}}"}""");
        using var strictClient = host.Client(strict);
        using var lenientClient = host.Client(lenient);

        var first = await strictClient.PostAsync("/v1/chat/completions", Json(Short));
        await lenientClient.PostAsync("/v1/chat/completions", Json(Short));
        await StoredThenRereadAsync(strictId, 1);
        await StoredThenRereadAsync(lenientId, 1);
        var refused = await strictClient.PostAsync("/v1/chat/completions", Json(Short));
        var downgraded = await lenientClient.PostAsync("/v1/chat/completions", Json(Short));

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.TooManyRequests), (first.StatusCode, refused.StatusCode));
        Assert.Contains("monthly budget", (await refused.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal((HttpStatusCode.OK, "mock"), (downgraded.StatusCode, downgraded.Headers.GetValues("x-gateway-downgraded-from").Single()));
    }

    [Fact]
    public async Task EndUserDailyBudget_LimitsEachUserOnItsOwn()
    {
        var (key, keyId) = await clocked.Host.CreateKeyFromJsonAsync("""{"name":"per-user","end_user_daily_budget_usd":0.00001}""");
        using var client = clocked.Host.Client(key);
        static string As(string user) => $$"""{"model":"mock","max_tokens":30,"user":"{{user}}","messages":[{"role":"user","content":"hi"}]}""";

        var alice1 = await client.PostAsync("/v1/chat/completions", Json(As("alice")));
        await StoredThenRereadAsync(keyId, 1);
        var alice2 = await client.PostAsync("/v1/chat/completions", Json(As("alice")));
        var bob = await client.PostAsync("/v1/chat/completions", Json(As("bob")));

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.TooManyRequests, HttpStatusCode.OK), (alice1.StatusCode, alice2.StatusCode, bob.StatusCode));
        Assert.Contains("end user", (await alice2.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task KeyUpdate_WithTheIssuesFieldNames_TakesEffectOnTheNextRequests()
    {
        using var admin = Gateway.Admin();
        var (key, id, created) = await Gateway.CreateKeyFromJsonAsync(
            """{"name":"camel","dailyBudgetUsd":5,"hardLimitUsd":7,"downgradeModel":"mock-mini","tags":["t1"]}""");
        var cache = (Gateway.Core.Keys.KeyCache)Gateway.Services.GetService(typeof(Gateway.Core.Keys.KeyCache))!;
        using var client = Gateway.Client(key);
        var before = await client.PostAsync("/v1/chat/completions", Json(Short));

        var patch = await admin.PatchAsync($"/admin/keys/{id}", Json("""{"hardLimitUsd":0.00001,"downgradeModel":null,"daily_budget_usd":null}"""));
        var updated = (await patch.Content.ReadFromJsonAsync<JsonObject>())!;
        await GatewayHost.WaitUntilAsync(() => cache.Authenticate(key).Key is { HardCapUsd: 0.00001m }); // NOTIFY: milliseconds, not asserted
        var after = await client.PostAsync("/v1/chat/completions", Json(Short));

        Assert.Equal((5m, 7m, "mock-mini"), (created["daily_budget_usd"]!.GetValue<decimal>(), created["hard_cap_usd"]!.GetValue<decimal>(),
            created["downgrade_model"]!.GetValue<string>()));
        Assert.Equal((HttpStatusCode.OK, "camel", 0.00001m, "t1"), (patch.StatusCode, updated["name"]!.GetValue<string>(),
            updated["hard_cap_usd"]!.GetValue<decimal>(), updated["tags"]![0]!.GetValue<string>()));
        Assert.Null(updated["downgrade_model"]);
        Assert.Null(updated["daily_budget_usd"]);
        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.TooManyRequests), (before.StatusCode, after.StatusCode));
    }

    [Fact]
    public async Task KeyUpdate_BadTypeIs400_UnknownKeyIs404()
    {
        using var admin = Gateway.Admin();
        var (_, id) = await Gateway.CreateKeyFromJsonAsync("""{"name":"patch-errors"}""");

        var badType = await admin.PatchAsync($"/admin/keys/{id}", Json("""{"dailyBudgetUsd":"lots"}"""));
        var negative = await admin.PatchAsync($"/admin/keys/{id}", Json("""{"hard_cap_usd":-1}"""));
        var unknown = await admin.PatchAsync($"/admin/keys/{Guid.NewGuid()}", Json("""{"hard_cap_usd":1}"""));

        Assert.Equal((HttpStatusCode.BadRequest, HttpStatusCode.BadRequest, HttpStatusCode.NotFound), (badType.StatusCode, negative.StatusCode, unknown.StatusCode));
        Assert.Equal("invalid_request_error", (await badType.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task DailyBudgetReached_WithoutAKeyDowngrade_FallsToTheGlobalDefault_MockMini()
    {
        await using var host = new GatewayHost(env.Postgres.ConnectionString, new() { ["Gateway:DefaultDowngradeModel"] = "mock-mini" });
        var (key, _) = await host.CreateKeyFromJsonAsync("""{"name":"default-downgrade","daily_budget_usd":0.00001}""");
        using var client = host.Client(key);

        var first = await client.PostAsync("/v1/chat/completions", Json(Short));
        // A key without a hard cap has its day's spend re-read every 2 s, once the writer stored the first row.
        var second = await Eventually.UntilAsync(() => client.PostAsync("/v1/chat/completions", Json(Short)),
            r => r.Headers.Contains("x-gateway-downgraded-from"), pause: TimeSpan.FromMilliseconds(500));

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (first.StatusCode, second.StatusCode));
        Assert.False(first.Headers.Contains("x-gateway-downgraded-from"));
        Assert.Equal("mock", second.Headers.GetValues("x-gateway-downgraded-from").Single());
        Assert.Equal("mock-mini-1", (await second.Content.ReadFromJsonAsync<JsonObject>())!["model"]!.GetValue<string>());
    }

    [Fact]
    public async Task TagBudget_IsSharedByEveryKeyWithTheTag_AndLiftedWhenDeleted()
    {
        var host = clocked.Host;
        var (spender, spenderId) = await host.CreateKeyFromJsonAsync("""{"name":"team-a-1","tags":["team-shared"]}""");
        var (teammate, _) = await host.CreateKeyFromJsonAsync("""{"name":"team-a-2","tags":["team-shared","other"]}""");
        var (outsider, _) = await host.CreateKeyFromJsonAsync("""{"name":"team-b","tags":["team-other"]}""");
        using var admin = host.Admin();
        var budgets = host.Services.GetService(typeof(Gateway.Core.Budgets.TagBudgets)) as Gateway.Core.Budgets.TagBudgets;
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsync("/admin/budgets/tags/team-shared", Json("""{"daily_budget_usd":0.00001}"""))).StatusCode);
        await GatewayHost.WaitUntilAsync(() => budgets!.Covers(["team-shared"]));
        using var spenderClient = host.Client(spender);
        using var teammateClient = host.Client(teammate);
        using var outsiderClient = host.Client(outsider);

        var first = await spenderClient.PostAsync("/v1/chat/completions", Json(Short));
        await StoredThenRereadAsync(spenderId, 1);
        var refused = await teammateClient.PostAsync("/v1/chat/completions", Json(Short));
        var unaffected = await outsiderClient.PostAsync("/v1/chat/completions", Json(Short));
        var listed = await admin.GetFromJsonAsync<JsonArray>("/admin/budgets/tags");
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync("/admin/budgets/tags/team-shared")).StatusCode);
        await GatewayHost.WaitUntilAsync(() => !budgets!.Covers(["team-shared"]));
        var lifted = await teammateClient.PostAsync("/v1/chat/completions", Json(Short));

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.TooManyRequests, HttpStatusCode.OK, HttpStatusCode.OK),
            (first.StatusCode, refused.StatusCode, unaffected.StatusCode, lifted.StatusCode));
        Assert.Contains("'team-shared'", (await refused.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains(listed!, b => b!["tag"]!.GetValue<string>() == "team-shared" && b["daily_budget_usd"]!.GetValue<decimal>() == 0.00001m);
    }

    [Fact]
    public async Task TagBudget_NegativeAmount_Is400()
    {
        using var admin = Gateway.Admin();

        var response = await admin.PutAsync("/admin/budgets/tags/team-neg", Json("""{"daily_budget_usd":-1}"""));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("invalid_request_error", (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task HardCapWithNoRoom_AndNoDowngrade_Is429InsufficientQuota()
    {
        var (key, keyId) = await Gateway.CreateKeyFromJsonAsync("""{"name":"broke","hard_cap_usd":0.00001}""");
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json(Short));

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!;
        Assert.Equal(("insufficient_quota", "insufficient_quota"), (error["type"]!.GetValue<string>(), error["code"]!.GetValue<string>()));
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal(((short)429, 0m, keyId), (row.Status, row.CostUsd, row.KeyId));
    }

    /// <summary>The system clock, moved by <see cref="Offset"/>: dates change, timers and timestamps stay real.</summary>
    private sealed class ShiftedClock(DateTimeOffset start) : TimeProvider
    {
        public TimeSpan Offset { get; set; } = start - System.GetUtcNow();
        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + Offset;
    }

    [Fact]
    public async Task DailyBudgetOfOneCent_DowngradesAfterCrossing_RefusesPastTheHardCap_AndResetsAtMidnightInTheBudgetTimeZone()
    {
        // 14:59:50 UTC is 23:59:50 in Tokyo; twenty seconds later Tokyo has a new day and UTC does not, so only a
        // day boundary taken in the configured zone resets the budget.
        var clock = new ShiftedClock(new DateTimeOffset(2027, 1, 15, 14, 59, 50, TimeSpan.Zero));
        await using var host = new GatewayHost(env.Postgres.ConnectionString, new() { ["Gateway:BudgetTimeZone"] = "Asia/Tokyo" }, clock);
        // The fake upstream reports 21 + 7 tokens: $0.0056 an answer from the pricey model, $0.0028 from the cheaper one.
        var pricey = await host.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o", inputPrice: 200m, outputPrice: 200m, cachedPrice: 200m);
        var cheaper = await host.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", inputPrice: 100m, outputPrice: 100m, cachedPrice: 100m);
        var (key, keyId) = await host.CreateKeyFromJsonAsync($$"""{"name":"one-cent","dailyBudgetUsd":0.01,"hardLimitUsd":0.02,"downgradeModel":"{{cheaper}}"}""");
        using var client = host.Client(key);
        // max_tokens 30 keeps each worst case ($0.0076 and $0.0038) above the real cost, as the hard cap's bound assumes.
        var ask = Json($$"""{"model":"{{pricey}}","max_tokens":30,"messages":[{"role":"user","content":"hi"}]}""");

        var answers = new List<HttpResponseMessage>();
        while (answers.Count < 12 && (answers.Count == 0 || answers[^1].StatusCode == HttpStatusCode.OK))
            answers.Add(await client.PostAsync("/v1/chat/completions", ask));

        var outcomes = answers.Select(a => a.StatusCode != HttpStatusCode.OK ? ((int)a.StatusCode).ToString()
            : a.Headers.Contains("x-gateway-downgraded-from") ? "down" : "asked").ToArray();
        // $0.0056 spent, then $0.0112 (over the budget: downgrade), 0.0140, 0.0168: the next one's worst case could cross $0.02.
        Assert.Equal(["asked", "asked", "down", "down", "429"], outcomes);
        Assert.Equal(pricey, answers[2].Headers.GetValues("x-gateway-downgraded-from").Single());
        Assert.Equal("insufficient_quota", (await answers[^1].Content.ReadFromJsonAsync<JsonObject>())!["error"]!["code"]!.GetValue<string>());
        Assert.Equal(0.0168m, await SpentAsync(keyId, 5));

        clock.Offset += TimeSpan.FromSeconds(20); // 00:00:10 in Tokyo, still the 15th in UTC
        var nextDay = await client.PostAsync("/v1/chat/completions", ask);

        Assert.Equal(HttpStatusCode.OK, nextDay.StatusCode);
        Assert.False(nextDay.Headers.Contains("x-gateway-downgraded-from"));
        Assert.Equal("0.01", nextDay.Headers.GetValues("x-gateway-budget-remaining").Single());
        await SpentAsync(keyId, 6);
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        var days = (await db.QueryAsync<(DateTime Day, long Requests, decimal Cost)>(
            "SELECT day, requests, cost_usd FROM usage_daily WHERE key_id = @keyId ORDER BY day", new { keyId })).ToArray();
        Assert.Equal([(new DateTime(2027, 1, 15), 5L, 0.0168m), (new DateTime(2027, 1, 16), 1L, 0.0056m)], days);
        var rowDays = await db.QueryAsync<DateTime>("SELECT day FROM usage_events WHERE key_id = @keyId ORDER BY occurred_at", new { keyId });
        Assert.Equal([.. Enumerable.Repeat(new DateTime(2027, 1, 15), 5), new DateTime(2027, 1, 16)], rowDays);
    }

    [Fact]
    public async Task RulesDowngradeTarget_ServesAKeyWithoutItsOwn_OverItsBudget()
    {
        var alias = "assistant-" + Guid.NewGuid().ToString("N")[..8];
        var rule = "rule-" + Guid.NewGuid().ToString("N")[..8];
        using var admin = Gateway.Admin();
        var put = await admin.PutAsync($"/admin/routes/{rule}",
            Json($$"""{"priority":5,"match":{"models":["{{alias}}"]},"targets":[{"model":"mock"}],"downgrade_model":"mock-mini"}"""));
        Assert.Equal("mock-mini", (await put.Content.ReadFromJsonAsync<JsonObject>())!["downgrade_model"]!.GetValue<string>());
        // The hard cap makes the day's spend exact on this instance, so the request after the crossing is downgraded.
        var (key, keyId) = await Gateway.CreateKeyFromJsonAsync("""{"name":"rule-downgrade","daily_budget_usd":0.00001,"hard_cap_usd":1}""");
        using var client = Gateway.Client(key);
        var ask = $$"""{"model":"{{alias}}","max_tokens":30,"messages":[{"role":"user","content":"hi"}]}""";

        var first = await Eventually.UntilAsync(() => client.PostAsync("/v1/chat/completions", Json(ask)), // until the rule reached this instance (NOTIFY)
            r => r.StatusCode != HttpStatusCode.NotFound);
        var second = await client.PostAsync("/v1/chat/completions", Json(ask));

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.False(first.Headers.Contains("x-gateway-downgraded-from"));
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal(alias, second.Headers.GetValues("x-gateway-downgraded-from").Single());
        Assert.Equal("mock-mini-1", (await second.Content.ReadFromJsonAsync<JsonObject>())!["model"]!.GetValue<string>());
        var row = await env.WaitForUsageAsync(Guid.Parse(second.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((alias, "mock-mini-1", rule, keyId), (row.DowngradedFrom, row.ServedModel, row.RoutingRule, row.KeyId));
    }
}
