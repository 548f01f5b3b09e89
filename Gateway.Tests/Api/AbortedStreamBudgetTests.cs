using System.Net;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

/// <summary>A client that walks away from its streams pays what its usage rows record, not each reservation's worst case.</summary>
public sealed class AbortedStreamBudgetTests(TestEnvironment env)
{
    [Fact]
    public async Task AbortedStreams_SettleTheCapAtTheRecordedCost_SoTheKeyKeepsWorking()
    {
        // Worst case per request: 4,096 output tokens at $10 per million, about $0.041; the cap holds one at a time.
        var alias = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "slow-stream");
        var (key, keyId) = await env.Gateway.CreateKeyAsync(hardCapUsd: 0.05m);
        // No draining of an abandoned answer (HttpClient would read on for up to 2 s to reuse the connection): leaving closes it.
        using var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = env.Gateway.BaseAddress };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);

        for (var i = 0; i < 5; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = Json($$"""{"model":"{{alias}}","stream":true,"messages":[{"role":"user","content":"abort {{i}}"}]}"""),
            };
            Guid requestId;
            using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                requestId = Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single());
                await using var body = await response.Content.ReadAsStreamAsync();
                using var reader = new StreamReader(body);
                var ticks = 0;
                while (ticks < 3 && await reader.ReadLineAsync() is { } line)
                    if (line.Contains("tick", StringComparison.Ordinal)) ticks++;
            } // leaving mid-stream closes the connection
            Assert.True((await env.WaitForUsageAsync(requestId)).Status == 499, $"stream {i} was not recorded as left by its client");
        }
        // Same prices, an answer that does not take seconds.
        var quick = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var after = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{quick}}","messages":[{"role":"user","content":"still here"}]}"""));

        Assert.Equal(HttpStatusCode.OK, after.StatusCode); // five worst cases ($0.2) would have locked it for the day
        await Eventually.TrueAsync(async () => (await env.UsageRowsForKeyAsync(keyId)).Count == 6, what: "six usage rows");
        Assert.True((await env.UsageRowsForKeyAsync(keyId)).Sum(r => r.CostUsd) <= 0.05m);
    }
}
