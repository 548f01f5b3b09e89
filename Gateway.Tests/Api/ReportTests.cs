using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Dapper;
using Gateway.Core.Admin;
using Gateway.Core.Metering;
using Gateway.Core.Reports;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Gateway.Tests.Api;

public sealed class ReportTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    /// <summary>A key whose name would run as a spreadsheet formula, and two metered requests on it.</summary>
    private async Task<(Guid KeyId, string Tag)> HostileKeyWithSpendAsync()
    {
        var tag = "finance-" + Guid.NewGuid().ToString("N")[..8];
        var (key, keyId) = await Gateway.CreateKeyFromJsonAsync($$"""{"name":"=HYPERLINK(\"http://x\",\"y\")","tags":["{{tag}}"]}""");
        using var client = Gateway.Client(key);
        foreach (var user in (string[])["ann", "bo,b"])
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions",
                Json($$"""{"model":"mock","user":"{{user}}","messages":[{"role":"user","content":"hi"}]}"""))).StatusCode);
        await Eventually.UntilAsync(() => env.UsageRowsForKeyAsync(keyId), r => r.Count >= 2, pause: TimeSpan.FromMilliseconds(50));
        return (keyId, tag);
    }

    [Fact]
    public async Task SpendCsvByKey_MatchesTheDatabaseToTheCent_AndNeutralisesFormulas()
    {
        var (keyId, _) = await HostileKeyWithSpendAsync();
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        var totals = await db.QuerySingleAsync<(long Prompt, long Completion, string Cost)>(
            "SELECT sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint, sum(cost_usd)::text FROM usage_daily WHERE key_id = @keyId", new { keyId });
        using var admin = Gateway.Admin();

        var response = await admin.GetAsync("/admin/reports/spend.csv?group_by=key");
        var csv = Encoding.UTF8.GetString(await response.Content.ReadAsByteArrayAsync());

        Assert.Equal("text/csv; charset=utf-8", response.Content.Headers.ContentType!.ToString());
        Assert.StartsWith("group,key_id,requests,errors,prompt_tokens,completion_tokens,cost_usd\r\n", csv, StringComparison.Ordinal);
        Assert.Contains($"\r\n\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",{keyId},2,0,{totals.Prompt},{totals.Completion},{totals.Cost}\r\n", csv,
            StringComparison.Ordinal);
    }

    [Fact]
    public async Task UsageCsv_HostileEndUsers_StayInTheirCell_AndNeverStartAFormula()
    {
        string[] users = ["abc\n=3+3", "abc\r=3+3", "abc\r\n=3+3", "\n=1+1", "=1+2", "+1", "-1", "@SUM(A1)", "\t=1", "a,b\"c"];
        var (key, keyId) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        foreach (var user in users)
        {
            var body = new JsonObject { ["model"] = "mock", ["user"] = user, ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" }) };
            (await client.PostAsync("/v1/chat/completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"))).EnsureSuccessStatusCode();
        }
        await Eventually.TrueAsync(async () => (await env.UsageRowsForKeyAsync(keyId)).Count == users.Length, what: "every usage row");
        using var admin = Gateway.Admin();

        var csv = await admin.GetStringAsync($"/admin/reports/usage.csv?key_id={keyId}");

        // Read as a spreadsheet would (RFC 4180): one record per request, each end user in its own cell.
        using var reader = new CsvHelper.CsvReader(new StringReader(csv), System.Globalization.CultureInfo.InvariantCulture);
        var cells = new List<string>();
        await reader.ReadAsync();
        reader.ReadHeader();
        while (await reader.ReadAsync()) cells.Add(reader.GetField("end_user")!);
        Assert.Equal(users.Length, cells.Count);
        Assert.Equal(users.Order(StringComparer.Ordinal), cells.Select(c => c.StartsWith('\'') ? c[1..] : c).Order(StringComparer.Ordinal));
        Assert.All(cells, c => Assert.DoesNotContain(c[0], "=+-@\t\r\n"));
    }

    [Fact]
    public async Task UsageCsv_HasOneRowPerRequest_WithIsoTimesAndEscapedCells()
    {
        var (keyId, _) = await HostileKeyWithSpendAsync();
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        var expected = (await db.QueryAsync<string>("""
            SELECT concat_ws(',', request_id, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), key_id,
                '"''=HYPERLINK(""http://x"",""y"")"', CASE WHEN end_user LIKE '%,%' THEN '"' || end_user || '"' ELSE end_user END,
                asked_model, served_model, provider, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, cache_write_1h_tokens,
                cost_usd::text, latency_ms, status,
                cache_hit::text, coalesce(downgraded_from, ''))
            FROM usage_events WHERE key_id = @keyId ORDER BY occurred_at, request_id
            """, new { keyId })).ToList();
        using var admin = Gateway.Admin();

        var csv = await admin.GetStringAsync($"/admin/reports/usage.csv?key_id={keyId}");

        Assert.Equal(2, expected.Count);
        Assert.Equal("request_id,occurred_at,key_id,key_name,end_user,asked_model,served_model,provider,prompt_tokens,completion_tokens,"
            + "cached_tokens,cache_write_tokens,cache_write_1h_tokens,cost_usd,latency_ms,status,cache_hit,downgraded_from\r\n" + string.Concat(expected.Select(line => line + "\r\n")), csv);
    }

    [Fact]
    public async Task UsageCsv_StreamsManyRows()
    {
        var (keyId, _) = await HostileKeyWithSpendAsync();
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        await db.ExecuteAsync("""
            INSERT INTO usage_events (request_id, occurred_at, day, key_id, served_model, provider, cost_usd, latency_ms, status, streamed)
            SELECT gen_random_uuid(), now() - make_interval(secs => i / 1000.0), (now() AT TIME ZONE 'UTC')::date, @keyId, 'bulk-model', 'mock',
                   0.000001, 5, 200, false
            FROM generate_series(1, 5000) AS i
            """, new { keyId });
        using var admin = Gateway.Admin();

        var csv = await admin.GetStringAsync($"/admin/reports/usage.csv?key_id={keyId}");

        Assert.Equal(1 + 2 + 5000, csv.Split("\r\n", StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [Fact]
    public async Task SpendJson_GroupsByTeamAndModel()
    {
        var (keyId, tag) = await HostileKeyWithSpendAsync();
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        var cost = await db.ExecuteScalarAsync<decimal>("SELECT sum(cost_usd) FROM usage_daily WHERE key_id = @keyId", new { keyId });
        var served = await db.ExecuteScalarAsync<string>("SELECT min(served_model) FROM usage_events WHERE key_id = @keyId", new { keyId });
        using var admin = Gateway.Admin();

        var teams = await admin.GetFromJsonAsync<JsonArray>("/admin/reports/spend?group_by=team");
        var models = await admin.GetFromJsonAsync<JsonArray>("/admin/reports/spend?group_by=model");

        var team = teams!.Single(r => r!["group"]!.GetValue<string>() == tag)!;
        Assert.Equal((2L, cost), (team["requests"]!.GetValue<long>(), team["cost_usd"]!.GetValue<decimal>()));
        Assert.Contains(models!, r => r!["group"]!.GetValue<string>() == served && r["requests"]!.GetValue<long>() >= 2);
        Assert.True(cost > 0);
    }

    [Fact]
    public async Task FocusCsv_HasOneUsageChargePerDayKeyAndModel_WithTheFocusColumns()
    {
        var (keyId, tag) = await HostileKeyWithSpendAsync();
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        var (tokens, cost, day) = await db.QuerySingleAsync<(long, string, DateOnly)>("""
            SELECT (sum(prompt_tokens) + sum(completion_tokens))::bigint, sum(cost_usd)::text, min(occurred_at AT TIME ZONE 'UTC')::date
            FROM usage_events WHERE key_id = @keyId
            """, new { keyId });
        using var admin = Gateway.Admin();

        var csv = await admin.GetStringAsync("/admin/reports/focus.csv");

        var lines = csv.Split("\r\n");
        var header = lines[0].Split(',');
        var row = lines.Single(l => l.Contains(keyId.ToString(), StringComparison.Ordinal));
        foreach (var required in (string[])["BilledCost", "BillingAccountId", "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory",
            "ChargePeriodEnd", "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "ProviderName", "PublisherName",
            "ServiceCategory", "ServiceName"])
            Assert.Contains(required, header);
        Assert.StartsWith($"{cost},mock,mock,USD,", row, StringComparison.Ordinal);
        Assert.Contains($",Usage-Based,{day.AddDays(1):yyyy-MM-dd}T00:00:00Z,{day:yyyy-MM-dd}T00:00:00Z,{tokens},Tokens,{cost},{cost},mock,{cost},Standard,", row,
            StringComparison.Ordinal);
        Assert.EndsWith($",{keyId},\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",\"{{\"\"gateway/{tag}\"\":\"\"true\"\"}}\",2,0,0,0", row, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SpendByModelAndProvider_AgreeWithTheUsageRows_AndCountAReplayedRequestOnce()
    {
        var channel = Gateway.Services.GetRequiredService<UsageChannel>();
        var day = new DateOnly(2031, 3, 17); // no other test stores rows on this day, so its reports hold only these
        var keyId = Guid.NewGuid();
        UsageRecord Usage(string? provider, string? served, string? asked, int prompt, int completion, decimal cost, short status = 200) => new()
        {
            RequestId = Guid.NewGuid(), OccurredAt = TimeProvider.System.GetUtcNow(), KeyId = keyId, Day = day, Provider = provider,
            ServedModel = served, AskedModel = asked, PromptTokens = prompt, CompletionTokens = completion, CostUsd = cost, Status = status,
        };
        var replayed = Usage("openai", "gpt-4o", "fast", 100, 50, 0.001m);
        UsageRecord[] first = [replayed, Usage("openai", "gpt-4o-mini", "cheap", 40, 10, 0.0002m),
            Usage("anthropic", "claude-sonnet", "smart", 80, 30, 0.003m), Usage(null, null, "unknown-alias", 0, 0, 0, 404)];
        // A later batch: the replay, another row in the replayed request's groups (an error) and one with no model at all.
        UsageRecord[] second = [replayed, Usage("openai", "gpt-4o", "fast", 10, 5, 0.0001m, 502), Usage(null, null, null, 0, 0, 0, 400)];
        foreach (var record in first) await channel.PublishAsync(record);
        await env.WaitForUsageAsync(first[^1].RequestId);
        foreach (var record in second) await channel.PublishAsync(record);
        await env.WaitForUsageAsync(second[^1].RequestId); // written after the replay, so once it is in, the replay was handled
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        async Task<List<SpendRow>> FromUsageRowsAsync(string group) => (await db.QueryAsync<SpendRow>($"""
            SELECT {group} AS "group", NULL::uuid AS key_id, count(*)::bigint AS requests, count(*) FILTER (WHERE status >= 400)::bigint AS errors,
                   sum(prompt_tokens)::bigint AS prompt_tokens, sum(completion_tokens)::bigint AS completion_tokens, sum(cost_usd) AS cost_usd
            FROM usage_events WHERE day = @day::date GROUP BY 1 ORDER BY cost_usd DESC, 1
            """, new { day = day.ToDateTime(TimeOnly.MinValue) })).AsList();
        using var admin = Gateway.Admin();

        var byModel = await admin.GetFromJsonAsync<List<SpendRow>>($"/admin/reports/spend?group_by=model&from={day:yyyy-MM-dd}&to={day:yyyy-MM-dd}",
            AdminJson.Options) ?? [];
        var byProvider = await admin.GetFromJsonAsync<List<SpendRow>>($"/admin/reports/spend?group_by=provider&from={day:yyyy-MM-dd}&to={day:yyyy-MM-dd}",
            AdminJson.Options) ?? [];

        Assert.Equal(await FromUsageRowsAsync("coalesce(served_model, asked_model, '(none)')"), byModel);
        Assert.Equal(await FromUsageRowsAsync("coalesce(provider, '(none)')"), byProvider);
        Assert.Equal(new SpendRow("gpt-4o", null, 2, 1, 110, 55, 0.0011m), byModel.Single(r => r.Group == "gpt-4o"));
        Assert.Equal(["claude-sonnet", "gpt-4o", "gpt-4o-mini", "(none)", "unknown-alias"], byModel.Select(r => r.Group));
        Assert.Equal([("anthropic", 1L), ("openai", 3L), ("(none)", 2L)], byProvider.Select(r => (r.Group, r.Requests)));
    }

    [Theory]
    [InlineData("/admin/reports/spend?group_by=colour")]
    [InlineData("/admin/reports/spend?from=2026-02-10&to=2026-02-01")]
    [InlineData("/admin/reports/spend.csv?from=yesterday")]
    [InlineData("/admin/reports/usage.csv?from=2024-01-01&to=2026-01-01")]
    [InlineData("/admin/reports/focus.csv?to=2020-01-01")]
    public async Task BadReportQuery_Is400InOpenAIsShape(string url)
    {
        using var admin = Gateway.Admin();

        var response = await admin.GetAsync(url);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("invalid_request_error", (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["type"]!.GetValue<string>());
    }
}
