using System.Net;
using System.Text.Json.Nodes;
using Dapper;
using Gateway.Tests.Fixtures;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Gateway.Tests.Api;

/// <summary>
/// Odd but legal limit fields cannot buy more output than a capped key reserved: an upstream may honour any of them, so the
/// worst case is taken from the largest. Checked over two instances against an upstream that bills what it was allowed.
/// </summary>
public sealed class HardCapBypassTests(TestEnvironment env)
{
    /// <summary>
    /// An OpenAI-compatible server (as many self-hosted ones do) that reads <c>max_tokens</c> before
    /// <c>max_completion_tokens</c> and always writes as much as it was allowed; its usage object is OpenAI's
    /// (https://platform.openai.com/docs/api-reference/chat/object).
    /// </summary>
    private sealed class GreedyUpstream : FakeServer
    {
        public static Task<GreedyUpstream> StartAsync() => StartAsync(new GreedyUpstream(), "/v1");

        protected override void Map(WebApplication app) => app.MapPost("/v1/chat/completions", async (HttpContext http) =>
        {
            var body = (await JsonNode.ParseAsync(http.Request.Body))!.AsObject();
            Requests.Enqueue(new RecordedRequest(body.ToJsonString(), http.Request.Headers.Authorization.ToString()));
            var allowed = body["max_tokens"]?.GetValue<int>() ?? body["max_completion_tokens"]?.GetValue<int>() ?? 16;
            http.Response.ContentType = "application/json";
            await http.Response.WriteAsync($$$"""
                {"id":"chatcmpl-greedy","object":"chat.completion","created":1741569952,"model":"greedy-1",
                 "choices":[{"index":0,"message":{"role":"assistant","content":"words words words","refusal":null},"logprobs":null,"finish_reason":"length"}],
                 "usage":{"prompt_tokens":9,"completion_tokens":{{{allowed}}},"total_tokens":{{{allowed + 9}}}}}
                """);
        });
    }

    [Theory]
    [InlineData("""{"max_completion_tokens":1,"max_tokens":100000}""")]
    [InlineData("""{"max_tokens":100000,"max_completion_tokens":1}""")]
    [InlineData("""{"max_completion_tokens":1,"max_output_tokens":100000}""")]
    public async Task TwoLimitFields_OverTwoInstances_SpendStaysUnderTheCap(string limits)
    {
        await using var upstream = await GreedyUpstream.StartAsync();
        // max_tokens_field "max_tokens": the quirk renames max_completion_tokens only when max_tokens is absent.
        var alias = await env.Gateway.AddModelAsync(upstream.BaseUrl, "greedy-1", inputPrice: 1m, outputPrice: 10m,
            settings: new JsonObject { ["max_tokens_field"] = "max_tokens" }, everyHost: true);
        const decimal Cap = 0.01m;
        var (key, keyId) = await env.Gateway.CreateKeyAsync(hardCapUsd: Cap);
        await using var second = new GatewayHost(env.Postgres.ConnectionString);
        foreach (var host in new[] { env.Gateway, second })
            await GatewayHost.WaitUntilAsync(() => host.Services.GetRequiredService<Gateway.Core.Catalog.ModelCatalog>().Find(alias) is not null
                && host.Services.GetRequiredService<Gateway.Core.Keys.KeyCache>().Authenticate(key).Key is not null);
        using var here = env.Gateway.Client(key);
        using var there = second.Client(key);
        var request = $$"""{"model":"{{alias}}","messages":[{"role":"user","content":"hi"}],{{limits[1..^1]}}}""";

        var answers = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => (i % 2 == 0 ? here : there).PostAsync("/v1/chat/completions", Json(request))));

        // Each request's worst case is 100,000 tokens at $10 per million, $1: more than the cap, so none may be sent.
        Assert.All(answers, a => Assert.Equal(HttpStatusCode.TooManyRequests, a.StatusCode));
        Assert.Empty(upstream.Requests);
        await Eventually.TrueAsync(async () => (await env.UsageRowsForKeyAsync(keyId)).Count == answers.Length, what: "every request's usage row");
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        Assert.True(await db.ExecuteScalarAsync<decimal>("SELECT coalesce(sum(cost_usd), 0) FROM usage_events WHERE key_id = @keyId", new { keyId }) <= Cap);
    }

    [Fact]
    public async Task LimitsThatFit_AreServed_AndWhatTheUpstreamBillsStaysUnderTheCap()
    {
        await using var upstream = await GreedyUpstream.StartAsync();
        const decimal Cap = 0.01m;
        var alias = await env.Gateway.AddModelAsync(upstream.BaseUrl, "greedy-1", inputPrice: 1m, outputPrice: 10m,
            settings: new JsonObject { ["max_tokens_field"] = "max_tokens" });
        var (key, keyId) = await env.Gateway.CreateKeyAsync(hardCapUsd: Cap);
        using var client = env.Gateway.Client(key);
        // 200 tokens allowed by max_tokens at $10 per million: $0.002 each, so about five fit under the cap.
        var request = $$"""{"model":"{{alias}}","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":1,"max_tokens":200}""";

        var answers = new List<HttpResponseMessage>();
        for (var i = 0; i < 10; i++) answers.Add(await client.PostAsync("/v1/chat/completions", Json(request)));

        Assert.True(answers.Any(a => a.StatusCode == HttpStatusCode.OK), string.Join("\n", await Task.WhenAll(answers.Select(a => a.Content.ReadAsStringAsync()))));
        Assert.Contains(answers, a => a.StatusCode == HttpStatusCode.TooManyRequests);
        await Eventually.TrueAsync(async () => (await env.UsageRowsForKeyAsync(keyId)).Count == answers.Count, what: "every request's usage row");
        var rows = await env.UsageRowsForKeyAsync(keyId);
        Assert.True(rows.Sum(r => r.CostUsd) <= Cap, $"spent {rows.Sum(r => r.CostUsd)}");
        Assert.All(rows.Where(r => r.Status == 200), r => Assert.Equal(200, r.CompletionTokens)); // billed what max_tokens allowed
    }
}
