using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Dapper;
using Gateway.Core.Metering;
using Gateway.Core.Reports;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Gateway.Tests.Core;

/// <summary>The spend dashboard's queries against the real database, fed through the real usage writer.</summary>
public sealed class SpendDashboardQueryTests(TestEnvironment env, SpendDashboardQueryTests.Usage usage) : IClassFixture<SpendDashboardQueryTests.Usage>
{
    // No other test stores usage on these days, so every figure below comes from this class's rows alone.
    private static readonly DateOnly Day = new(2032, 5, 11);
    private static readonly DateOnly NextDay = Day.AddDays(1);

    private SpendDashboard Dashboard => env.Gateway.Services.GetRequiredService<SpendDashboard>();

    /// <summary>Two keys (one tagged) and six usage rows over two days, written once for the class through the usage writer.</summary>
    public sealed class Usage : IAsyncLifetime
    {
        public Guid TeamKey { get; private set; }
        public Guid UntaggedKey { get; private set; }
        public string Tag { get; } = "dash-" + Guid.NewGuid().ToString("N")[..8];
        public UsageRecord[] Rows { get; private set; } = [];

        public async ValueTask InitializeAsync()
        {
            var env = TestEnvironment.Current;
            TeamKey = await CreateKeyAsync(env, "dash-team", [Tag]);
            UntaggedKey = await CreateKeyAsync(env, "dash-untagged", []);
            var at = new DateTimeOffset(Day.ToDateTime(new TimeOnly(10, 0)), TimeSpan.Zero);
            UsageRecord Row(Guid key, int minute, string? provider, string? served, string? asked, decimal cost, int latencyMs,
                short status = 200, bool fallback = false, DateOnly? day = null) => new()
            {
                RequestId = Guid.NewGuid(), OccurredAt = at.AddDays((day ?? Day).DayNumber - Day.DayNumber).AddMinutes(minute), KeyId = key,
                Day = day ?? Day, Provider = provider, ServedModel = served, AskedModel = asked, PromptTokens = 10 * (minute + 1),
                CompletionTokens = minute + 1, CostUsd = cost, LatencyMs = latencyMs, Status = status, Fallback = fallback,
            };
            Rows =
            [
                Row(TeamKey, 0, "openai", "gpt-4o", "fast", 0.001m, 100),
                Row(TeamKey, 1, "openai", "gpt-4o-mini", "cheap", 0.0002m, 200, fallback: true),
                Row(TeamKey, 2, "anthropic", "claude-sonnet", "smart", 0.003m, 300),
                Row(UntaggedKey, 3, "openai", "gpt-4o", "fast", 0.002m, 400, status: 502, fallback: true),
                Row(UntaggedKey, 4, null, null, "unknown-alias", 0m, 1000, status: 404),
                Row(TeamKey, 0, "openai", "gpt-4o", "fast", 0.0005m, 50, day: NextDay),
            ];
            var channel = env.Gateway.Services.GetRequiredService<UsageChannel>();
            foreach (var row in Rows) await channel.PublishAsync(row);
            foreach (var row in Rows) await env.WaitForUsageAsync(row.RequestId);
        }

        private static async Task<Guid> CreateKeyAsync(TestEnvironment env, string name, string[] tags)
        {
            using var admin = env.Gateway.Admin();
            var response = await admin.PostAsJsonAsync("/admin/keys", new JsonObject
            {
                ["name"] = name + "-" + Guid.NewGuid().ToString("N")[..6],
                ["tags"] = new JsonArray([.. tags.Select(t => JsonValue.Create(t))]),
            });
            response.EnsureSuccessStatusCode();
            return (await response.Content.ReadFromJsonAsync<JsonObject>())!["id"]!.GetValue<Guid>();
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    [Fact]
    public async Task Daily_ByModelAndProvider_AgreesWithTheUsageRows_IncludingFallbacks()
    {
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        async Task<List<DailySpend>> FromUsageRowsAsync(string group) => (await db.QueryAsync<DailySpend>($"""
            SELECT day, {group} AS "group", count(*)::bigint AS requests, count(*) FILTER (WHERE status >= 400)::bigint AS errors,
                   count(*) FILTER (WHERE fallback)::bigint AS fallbacks, sum(prompt_tokens)::bigint AS prompt_tokens,
                   sum(completion_tokens)::bigint AS completion_tokens, sum(cached_tokens)::bigint AS cached_tokens, sum(cost_usd) AS cost_usd
            FROM usage_events WHERE day BETWEEN @from::date AND @to::date GROUP BY 1, 2 ORDER BY 1, cost_usd DESC, 2
            """, new { from = Day.ToDateTime(TimeOnly.MinValue), to = NextDay.ToDateTime(TimeOnly.MinValue) })).AsList();

        var byModel = await Dashboard.DailyAsync(new SpendFilter(Day, NextDay), SpendGroup.Model, CancellationToken.None);
        var byProvider = await Dashboard.DailyAsync(new SpendFilter(Day, NextDay), SpendGroup.Provider, CancellationToken.None);

        Assert.Equal(await FromUsageRowsAsync("coalesce(served_model, asked_model, '(none)')"), byModel);
        Assert.Equal(await FromUsageRowsAsync("coalesce(provider, '(none)')"), byProvider);
        var gpt4o = byModel.Single(r => r.Day == Day && r.Group == "gpt-4o");
        Assert.Equal((2L, 1L, 1L, 0.003m), (gpt4o.Requests, gpt4o.Errors, gpt4o.Fallbacks, gpt4o.CostUsd));
        Assert.Equal([(Day, "openai"), (Day, "anthropic"), (Day, "(none)"), (NextDay, "openai")], byProvider.Select(r => (r.Day, r.Group)));
    }

    [Fact]
    public async Task Daily_FilteredByKeyTeamModelOrProvider_KeepsOnlyThoseRows()
    {
        var f = usage;
        async Task<List<(DateOnly, string, long, decimal)>> DailyAsync(SpendFilter filter, SpendGroup by) =>
            [.. (await Dashboard.DailyAsync(filter, by, CancellationToken.None)).Select(r => (r.Day, r.Group, r.Requests, r.CostUsd))];

        var byKey = await DailyAsync(new SpendFilter(Day, NextDay, KeyId: f.TeamKey), SpendGroup.Provider);
        var byTeam = await DailyAsync(new SpendFilter(Day, NextDay, Team: f.Tag), SpendGroup.Provider);
        var untagged = await DailyAsync(new SpendFilter(Day, Day, Team: SpendFilter.Untagged), SpendGroup.Model);
        var byModel = await DailyAsync(new SpendFilter(Day, NextDay, Model: "gpt-4o"), SpendGroup.Provider);
        var byProvider = await DailyAsync(new SpendFilter(Day, NextDay, Provider: "(none)"), SpendGroup.Model);
        var none = await DailyAsync(new SpendFilter(Day, NextDay, KeyId: f.UntaggedKey, Team: f.Tag), SpendGroup.Model);

        Assert.Equal([(Day, "anthropic", 1L, 0.003m), (Day, "openai", 2L, 0.0012m), (NextDay, "openai", 1L, 0.0005m)], byKey);
        Assert.Equal(byKey, byTeam);
        Assert.Equal([(Day, "gpt-4o", 1L, 0.002m), (Day, "unknown-alias", 1L, 0m)], untagged);
        Assert.Equal([(Day, "openai", 2L, 0.003m), (NextDay, "openai", 1L, 0.0005m)], byModel);
        Assert.Equal([(Day, "unknown-alias", 1L, 0m)], byProvider);
        Assert.Empty(none);
    }

    [Fact]
    public async Task TopKeysAndCount_ReadTheAggregates_DearestFirst()
    {
        var f = usage;

        var top = await Dashboard.TopKeysAsync(new SpendFilter(Day, NextDay), 10, CancellationToken.None);
        var count = await Dashboard.CountAsync(new SpendFilter(Day, NextDay), CancellationToken.None);
        var countOfKey = await Dashboard.CountAsync(new SpendFilter(Day, NextDay, KeyId: f.UntaggedKey), CancellationToken.None);
        var onlyOne = await Dashboard.TopKeysAsync(new SpendFilter(Day, NextDay), 1, CancellationToken.None);

        Assert.Equal([(f.TeamKey, 4L, 0.0047m), (f.UntaggedKey, 2L, 0.002m)], top.Select(k => (k.KeyId, k.Requests, k.CostUsd)));
        Assert.StartsWith("dash-team-", top[0].KeyName, StringComparison.Ordinal);
        Assert.StartsWith("gw-", top[0].KeyPrefix, StringComparison.Ordinal);
        Assert.Equal((6L, 2L), (count, countOfKey));
        Assert.Equal(f.TeamKey, Assert.Single(onlyOne).KeyId);
    }

    [Fact]
    public async Task Latency_OverAShortRange_IsThePercentilesOfTheRows_AndNullPastTheCap()
    {
        var f = usage;

        var day = await Dashboard.LatencyAsync(new SpendFilter(Day, Day), CancellationToken.None);
        var ofKey = await Dashboard.LatencyAsync(new SpendFilter(Day, NextDay, KeyId: f.TeamKey), CancellationToken.None);
        var empty = await Dashboard.LatencyAsync(new SpendFilter(Day, Day, Model: "no-such-model"), CancellationToken.None);
        var tooLong = await Dashboard.LatencyAsync(new SpendFilter(Day.AddDays(-SpendDashboard.MaxLatencyDays), Day), CancellationToken.None);

        // 100, 200, 300, 400, 1000 ms: the median is 300; p95 interpolates 80% of the way from 400 to 1000.
        Assert.Equal((5L, 300d), (day!.Requests, day.P50Ms!.Value));
        Assert.Equal(880d, day.P95Ms!.Value, precision: 6);
        Assert.Equal((4L, 150d), (ofKey!.Requests, ofKey.P50Ms!.Value));
        Assert.Equal(285d, ofKey.P95Ms!.Value, precision: 6);
        Assert.Equal(new LatencyStats { Requests = 0 }, empty);
        Assert.Null(tooLong);
    }

    [Fact]
    public async Task UsagePage_IsNewestFirst_PagedInSql_WithEveryColumn()
    {
        var f = usage;

        var page = await Dashboard.UsagePageAsync(new SpendFilter(Day, NextDay), offset: 1, limit: 2, CancellationToken.None);
        var last = await Dashboard.UsagePageAsync(new SpendFilter(Day, NextDay), offset: 5, limit: 2, CancellationToken.None);
        var ofModel = await Dashboard.UsagePageAsync(new SpendFilter(Day, NextDay, Model: "gpt-4o"), 0, 10, CancellationToken.None);

        Assert.Equal([f.Rows[4].RequestId, f.Rows[3].RequestId], page.Select(r => r.RequestId));
        var error = page[1];
        Assert.Equal((f.UntaggedKey, "openai", "gpt-4o", (short)502, true, 0.002m, 400), (error.KeyId, error.Provider, error.ServedModel, error.Status,
            error.Fallback, error.CostUsd, error.LatencyMs));
        Assert.Equal(f.Rows[3].OccurredAt.UtcDateTime, error.OccurredAt);
        Assert.StartsWith("dash-untagged-", error.KeyName, StringComparison.Ordinal);
        Assert.Equal(f.Rows[0].RequestId, Assert.Single(last).RequestId);
        Assert.Equal([f.Rows[5].RequestId, f.Rows[3].RequestId, f.Rows[0].RequestId], ofModel.Select(r => r.RequestId));
    }

    [Fact]
    public async Task UsageExport_Filtered_StreamsTheSelectedRowsOldestFirst()
    {
        var f = usage;
        var reports = env.Gateway.Services.GetRequiredService<SpendReports>();

        var rows = new List<Gateway.Core.Reports.UsageRow>();
        await foreach (var row in reports.UsageAsync(new SpendFilter(Day, NextDay, Team: f.Tag, Provider: "openai"), CancellationToken.None))
            rows.Add(row);

        Assert.Equal([f.Rows[0].RequestId, f.Rows[1].RequestId, f.Rows[5].RequestId], rows.Select(r => r.RequestId));
        Assert.Equal("2032-05-12T10:00:00.000000Z", rows[2].OccurredAt);
    }

    [Fact]
    public async Task FilterOptions_ListTheRangesModelsAndProviders_AndEveryTag()
    {
        var f = usage;

        var options = await Dashboard.FilterOptionsAsync(Day, Day, CancellationToken.None);

        Assert.Equal(["claude-sonnet", "gpt-4o", "gpt-4o-mini", "unknown-alias"], options.Models.Order(StringComparer.Ordinal));
        Assert.Equal(["(none)", "anthropic", "openai"], options.Providers.Order(StringComparer.Ordinal));
        Assert.Contains(f.Tag, options.Teams);
    }

    [Fact]
    public async Task DailyCsv_NamesTheGroupColumn_WithExactCostsAndEscapedFormulas()
    {
        DailySpend[] rows =
        [
            new() { Day = Day, Group = "gpt-4o", Requests = 2, Errors = 1, Fallbacks = 1, PromptTokens = 30, CompletionTokens = 5, CostUsd = 0.003000000000m },
            new() { Day = NextDay, Group = "=cmd()", Requests = 1, CostUsd = 0.0005m },
        ];
        using var body = new MemoryStream();

        await SpendCsv.WriteDailyAsync(body, SpendGroup.Model, rows);

        Assert.Equal("day,model,requests,errors,fallbacks,prompt_tokens,completion_tokens,cached_tokens,cost_usd\r\n"
            + "2032-05-11,gpt-4o,2,1,1,30,5,0,0.003000000000\r\n"
            + "2032-05-12,\"'=cmd()\",1,0,0,0,0,0,0.0005\r\n", Encoding.UTF8.GetString(body.ToArray()));
        Assert.NotEqual(0xEF, body.ToArray()[0]); // no BOM
    }
}
