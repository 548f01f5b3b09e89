using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using CsvHelper;
using Dapper;
using Gateway.Tests.Fixtures;
using Npgsql;

namespace Gateway.Tests.Metering;

/// <summary>
/// Prompt-cache tokens, each at its own price, streamed and not: Anthropic's reads and its writes to 5-minute and 1-hour
/// entries, OpenAI's cached tokens (and the writes OpenAI-compatible APIs report), Gemini's cached content. The usage row keeps
/// every count and price used, the exports carry them, and a hard cap holds when prompts are written to a cache.
/// </summary>
public sealed class CachePricingTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    private const decimal PerMillion = 1_000_000m;

    /// <summary>One request, read to its end; its usage row once stored.</summary>
    private async Task<(UsageRow Row, string Body)> SendAsync(string key, string alias, bool stream)
    {
        using var client = Gateway.Client(key);
        using var response = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{alias}}","stream":{{(stream ? "true" : "false")}},{{(stream ? "\"stream_options\":{\"include_usage\":true}," : "")}}
             "max_tokens":100,"messages":[{"role":"user","content":"Hello"}]}
            """));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        if (stream) Assert.EndsWith("data: [DONE]\n\n", body, StringComparison.Ordinal);
        return (await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single())), body);
    }

    private static decimal?[] Prices(UsageRow row) =>
        [row.InputPricePerMTok, row.OutputPricePerMTok, row.CachedInputPricePerMTok, row.CacheWritePricePerMTok, row.CacheWrite1hPricePerMTok];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Anthropic_CacheReadsAndWritesOfBothLifetimes_EachAtItsOwnPrice(bool stream)
    {
        // No write prices set: 1.25× and 2× the input price, Anthropic's.
        var alias = await Gateway.AddModelAsync(env.Anthropic.BaseUrl, "claude-sonnet-4-5-cache-writes", protocol: "anthropic",
            inputPrice: 3m, outputPrice: 15m, cachedPrice: 0.3m, secret: FakeAnthropic.ApiKey);
        var (key, keyId) = await Gateway.CreateKeyAsync();

        var (row, _) = await SendAsync(key, alias, stream);

        // 40 input + 1,000 written for 5 minutes + 2,000 for an hour + 5,000 read; streams take the split from message_start.
        Assert.Equal((keyId, 8040, 12, 5000, 1000, 2000, false, stream),
            (row.KeyId, row.PromptTokens, row.CompletionTokens, row.CachedTokens, row.CacheWriteTokens, row.CacheWrite1hTokens, row.UsageEstimated, row.Streamed));
        Assert.Equal(new decimal?[] { 3m, 15m, 0.3m, 3.75m, 6m }, Prices(row));
        Assert.Equal((40 * 3m + 5000 * 0.3m + 1000 * 3.75m + 2000 * 6m + 12 * 15m) / PerMillion, row.CostUsd);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task OpenAI_CachedTokens_AtTheCachedPrice(bool stream)
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", inputPrice: 2.5m, outputPrice: 10m, cachedPrice: 1.25m);
        var (key, _) = await Gateway.CreateKeyAsync();

        var (row, _) = await SendAsync(key, alias, stream);

        Assert.Equal((21, 7, 5, 0, 0, false), (row.PromptTokens, row.CompletionTokens, row.CachedTokens, row.CacheWriteTokens, row.CacheWrite1hTokens, row.UsageEstimated));
        Assert.Equal(new decimal?[] { 2.5m, 10m, 1.25m, 3.125m, 5m }, Prices(row));
        Assert.Equal((16 * 2.5m + 5 * 1.25m + 7 * 10m) / PerMillion, row.CostUsd);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task OpenAICompatible_ReportedCacheWrites_AtTheCacheWritePrice_AndTheUsageReachesTheClientUntouched(bool stream)
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "anthropic/claude-sonnet-4.5-cache-write", inputPrice: 3m, outputPrice: 15m,
            cachedPrice: 0.3m, cacheWritePrice: 3.75m, cacheWrite1hPrice: 6m);
        var (key, _) = await Gateway.CreateKeyAsync();

        var (row, body) = await SendAsync(key, alias, stream);

        Assert.Contains("\"cache_write_tokens\":8", body, StringComparison.Ordinal); // the pass-through keeps the upstream's usage as it was
        Assert.Equal((21, 7, 5, 8, 0), (row.PromptTokens, row.CompletionTokens, row.CachedTokens, row.CacheWriteTokens, row.CacheWrite1hTokens));
        Assert.Equal(new decimal?[] { 3m, 15m, 0.3m, 3.75m, 6m }, Prices(row));
        Assert.Equal((8 * 3m + 5 * 0.3m + 8 * 3.75m + 7 * 15m) / PerMillion, row.CostUsd);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Gemini_CachedContentTokens_AtTheCachedPrice(bool stream)
    {
        var alias = await Gateway.AddModelAsync(env.Gemini.BaseUrl, "gemini-2.5-flash", protocol: "gemini", inputPrice: 1.25m, outputPrice: 10m,
            cachedPrice: 0.3125m, secret: FakeGemini.ApiKey);
        var (key, _) = await Gateway.CreateKeyAsync();

        var (row, _) = await SendAsync(key, alias, stream);

        // promptTokenCount (30) includes the 8 cached; thoughts (5) are billed as output with the 10 candidates' tokens.
        Assert.Equal((30, 15, 8, 0, 0, false), (row.PromptTokens, row.CompletionTokens, row.CachedTokens, row.CacheWriteTokens, row.CacheWrite1hTokens, row.UsageEstimated));
        Assert.Equal((22 * 1.25m + 8 * 0.3125m + 15 * 10m) / PerMillion, row.CostUsd);
    }

    [Fact]
    public async Task ModelWritePrices_UnsetDefaultToOneAndAQuarterAndTwiceTheInputPrice_SetOnesAreKept()
    {
        var defaulted = await Gateway.AddModelAsync(env.Anthropic.BaseUrl, "claude-haiku-4-5", protocol: "anthropic", inputPrice: 0.000001m,
            secret: FakeAnthropic.ApiKey);
        var set = await Gateway.AddModelAsync(env.Anthropic.BaseUrl, "claude-haiku-4-5", protocol: "anthropic", inputPrice: 1m,
            cacheWritePrice: 1.1m, cacheWrite1hPrice: 0m, secret: FakeAnthropic.ApiKey);
        using var admin = Gateway.Admin();

        var models = (await admin.GetFromJsonAsync<JsonArray>("/admin/models"))!;

        JsonNode Model(string alias) => models.Single(m => m!["alias"]!.GetValue<string>() == alias)!;
        // 1.25 × $0.000001 is rounded up to the micro-dollar the price is stored to: a write is never priced below its cost.
        Assert.Equal((0.000002m, 0.000002m), (Model(defaulted)["cache_write_price_per_mtok"]!.GetValue<decimal>(),
            Model(defaulted)["cache_write_1h_price_per_mtok"]!.GetValue<decimal>()));
        Assert.Equal((1.1m, 0m), (Model(set)["cache_write_price_per_mtok"]!.GetValue<decimal>(), Model(set)["cache_write_1h_price_per_mtok"]!.GetValue<decimal>()));
    }

    [Fact]
    public async Task UsageAndFocusExports_CarryTheCacheReadsAndWrites()
    {
        var alias = await Gateway.AddModelAsync(env.Anthropic.BaseUrl, "claude-sonnet-4-5-cache-writes", protocol: "anthropic",
            inputPrice: 3m, outputPrice: 15m, cachedPrice: 0.3m, secret: FakeAnthropic.ApiKey);
        var (key, keyId) = await Gateway.CreateKeyAsync();
        var (row, _) = await SendAsync(key, alias, stream: true);
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        await Eventually.TrueAsync(async () => await db.ExecuteScalarAsync<long>(
            "SELECT coalesce(sum(requests), 0) FROM usage_daily_models WHERE key_id = @keyId", new { keyId }) == 1, what: "the daily aggregate");
        using var admin = Gateway.Admin();

        var usage = Rows(await admin.GetStringAsync($"/admin/reports/usage.csv?key_id={keyId}"));
        var focus = Rows(await admin.GetStringAsync("/admin/reports/focus.csv")).Where(r => r["SubAccountId"] == keyId.ToString()).ToList();

        var line = Assert.Single(usage);
        Assert.Equal(("5000", "1000", "2000", row.CostUsd), (line["cached_tokens"], line["cache_write_tokens"], line["cache_write_1h_tokens"],
            decimal.Parse(line["cost_usd"], CultureInfo.InvariantCulture)));
        var charge = Assert.Single(focus);
        Assert.Equal(("5000", "1000", "2000", row.CostUsd), (charge["x_CacheReadTokens"], charge["x_CacheWriteTokens"], charge["x_CacheWrite1hTokens"],
            decimal.Parse(charge["BilledCost"], CultureInfo.InvariantCulture)));

        static List<Dictionary<string, string>> Rows(string csv)
        {
            using var reader = new CsvReader(new StringReader(csv), CultureInfo.InvariantCulture);
            reader.Read();
            reader.ReadHeader();
            var rows = new List<Dictionary<string, string>>();
            while (reader.Read()) rows.Add(reader.HeaderRecord!.ToDictionary(h => h, h => reader.GetField(h)!));
            return rows;
        }
    }

    [Fact]
    public async Task HardCap_EveryPromptWrittenToTheOneHourCache_SpendStaysWithinTheCap()
    {
        // Each prompt (1,000 words) is billed as a 1-hour cache write, twice the input price. A worst case that priced the prompt as
        // plain input reserved about half of what each request cost, so a $0.03 cap admitted nine at once: $0.056.
        var alias = await Gateway.AddModelAsync(env.Anthropic.BaseUrl, "claude-haiku-4-5-cache-1h-all", protocol: "anthropic",
            inputPrice: 3m, outputPrice: 15m, cachedPrice: 0.3m, secret: FakeAnthropic.ApiKey);
        const decimal cap = 0.03m;
        var (key, keyId) = await Gateway.CreateKeyAsync(hardCapUsd: cap);
        using var client = Gateway.Client(key);
        var ask = $$"""{"model":"{{alias}}","max_tokens":20,"messages":[{"role":"user","content":"{{string.Join(' ', Enumerable.Repeat("hello", 1000))}}"}]}""";

        var answers = await Task.WhenAll(Enumerable.Range(0, 12).Select(async _ =>
        {
            using var response = await client.PostAsync("/v1/chat/completions", Json(ask));
            return response.StatusCode;
        }));
        for (var i = 0; i < 3; i++)
        {
            // One at a time too, once the earlier ones are settled.
            await Eventually.TrueAsync(async () => (await env.UsageRowsForKeyAsync(keyId)).Count == answers.Length, what: "every request's usage row");
            using var response = await client.PostAsync("/v1/chat/completions", Json(ask));
            answers = [.. answers, response.StatusCode];
        }

        Assert.All(answers, status => Assert.True(status is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, status.ToString()));
        Assert.Contains(HttpStatusCode.OK, answers);
        Assert.Contains(HttpStatusCode.TooManyRequests, answers);
        await Eventually.TrueAsync(async () => (await env.UsageRowsForKeyAsync(keyId)).Count == answers.Length, what: "every request's usage row");
        var rows = await env.UsageRowsForKeyAsync(keyId);
        Assert.All(rows.Where(r => r.Status == 200), r => Assert.Equal((1000, 1000, 6m), (r.PromptTokens, r.CacheWrite1hTokens, r.CacheWrite1hPricePerMTok!.Value)));
        var spent = rows.Sum(r => r.CostUsd);
        Assert.True(spent <= cap, $"spent ${spent} on a ${cap} hard cap");
    }
}
