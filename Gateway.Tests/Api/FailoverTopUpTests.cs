using System.Net;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

/// <summary>
/// A capped key's reservation covers one answer. When an attempt the provider billed breaks and another candidate is called, the
/// reservation is topped up by what the broken attempt cost first, from the same lease; without room there is no second call.
/// The cap holds either way.
/// </summary>
public sealed class FailoverTopUpTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    private static Guid RequestId(HttpResponseMessage response) => Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single());

    private int Calls(string upstreamModel, string marker) =>
        env.Upstream.Requests.Count(r => r.Body.Contains(marker, StringComparison.Ordinal) && r.Json["model"]!.GetValue<string>() == upstreamModel);

    /// <summary>A primary that breaks after "Hello from" and a fallback, both at $0 input and $10 output per million.</summary>
    private async Task<string> ChainAsync()
    {
        var fallback = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", inputPrice: 0m, outputPrice: 10m, cachedPrice: 0m);
        return await Gateway.AddModelAsync(env.Upstream.BaseUrl, "drop-mid-stream", inputPrice: 0m, outputPrice: 10m, cachedPrice: 0m, fallbacks: [fallback]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task BreakAfterBilledTokens_WithRoomUnderTheCap_TheFallbackServes(bool stream)
    {
        var primary = await ChainAsync();
        var (key, keyId) = await Gateway.CreateKeyAsync(hardCapUsd: 1m);
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{primary}}","stream":{{(stream ? "true" : "false")}},"max_tokens":50,"messages":[{"role":"user","content":"{{marker}}"}]}
            """));
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.DoesNotContain("\"error\"", body, StringComparison.Ordinal);
        Assert.Equal(1, Calls("gpt-4o-mini", marker));
        var row = await env.WaitForUsageAsync(RequestId(response));
        Assert.Equal(((short)200, (short)2), (row.Status, row.Attempts));
        Assert.True(row.CostUsd > 0 && row.CostUsd <= 1m);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task BreakAfterBilledTokens_WithNoRoomLeft_NoSecondCall_AndTheCapHolds(bool stream)
    {
        var primary = await ChainAsync();
        // 100 output tokens at $10 per million is the whole $0.001 cap: the lease is exactly this request's worst case.
        var (key, keyId) = await Gateway.CreateKeyAsync(hardCapUsd: 0.001m);
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{primary}}","stream":{{(stream ? "true" : "false")}},"max_tokens":100,"messages":[{"role":"user","content":"{{marker}}"}]}
            """));
        var body = await response.Content.ReadAsStringAsync();

        if (stream)
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode); // the client had "Hello from": the stream ends with an error event
            var events = ChatCompletionsTests.SseEvents(body);
            Assert.Equal("[DONE]", events[^1]);
            Assert.Contains("\"error\":{", events[^2], StringComparison.Ordinal);
        }
        else
        {
            Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        }
        Assert.Equal(0, Calls("gpt-4o-mini", marker));
        var row = await env.WaitForUsageAsync(RequestId(response));
        Assert.True(row.CostUsd > 0, "the broken attempt is charged");
        Assert.True((await env.UsageRowsForKeyAsync(keyId)).Sum(r => r.CostUsd) <= 0.001m);
    }

    [Fact]
    public async Task EveryRequestFailsOverAfterABilledPartialAnswer_SpendNeverPassesTheCap()
    {
        var primary = await ChainAsync();
        const decimal cap = 0.005m;
        var (key, keyId) = await Gateway.CreateKeyAsync(hardCapUsd: cap);
        using var client = Gateway.Client(key);

        var statuses = await Task.WhenAll(Enumerable.Range(0, 40).Select(async i =>
        {
            using var response = await client.PostAsync("/v1/chat/completions", Json($$"""
                {"model":"{{primary}}","stream":{{(i % 2 == 0 ? "true" : "false")}},"max_tokens":60,"messages":[{"role":"user","content":"topup {{i}}"}]}
                """));
            await response.Content.ReadAsStringAsync();
            return response.StatusCode;
        }));

        Assert.Contains(HttpStatusCode.OK, statuses);
        Assert.Contains(HttpStatusCode.TooManyRequests, statuses); // the cap ran out: refused, not overspent
        var rows = await Eventually.UntilAsync(() => env.UsageRowsForKeyAsync(keyId), found => found.Count == 40);
        Assert.Equal(40, rows.Count);
        Assert.True(rows.Sum(r => r.CostUsd) <= cap, $"spent {rows.Sum(r => r.CostUsd)} on a {cap} cap");
    }
}
