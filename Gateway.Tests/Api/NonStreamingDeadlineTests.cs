using System.Net;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Api;

/// <summary>
/// A non-streaming request has the model's first-token deadline too: each candidate is called streaming and its chunks assembled,
/// so a hang before the first token or a break half-way fails over while the client has received nothing.
/// </summary>
public sealed class NonStreamingDeadlineTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    private static Guid RequestId(HttpResponseMessage response) => Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single());

    private int Calls(string upstreamModel, string marker) =>
        env.Upstream.Requests.Count(r => r.Body.Contains(marker, StringComparison.Ordinal) && r.Json["model"]!.GetValue<string>() == upstreamModel);

    [Fact]
    public async Task PrimarySilentPastItsFirstTokenDeadline_FallbackAnswers_LongBeforeTheWholeCallTimeout()
    {
        // The primary would answer after 30 s, well within its two-minute timeout_ms: only the 800 ms first-token deadline moves on.
        var fallback = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var primary = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "late-first-token", fallbacks: [fallback], ttftTimeoutMs: 800, timeoutMs: 120_000);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{primary}}","messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(fallback.Split('/')[0], response.Headers.GetValues("x-gateway-provider").Single());
        Assert.Equal(FakeOpenAI.Answer, JsonNode.Parse(await response.Content.ReadAsStringAsync())!["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal(["timeout", "ok"], await env.TrailOutcomesAsync(RequestId(response)));
    }

    [Fact]
    public async Task ModelWithoutItsOwnDeadline_GetsTheNonStreamingDefault_NotTheStreamsOne()
    {
        // Streams' default long, the non-streaming one short: a non-streamed call to a model that sets none follows the latter.
        await using var host = new GatewayHost(env.Postgres.ConnectionString, new()
        {
            ["Gateway:Upstream:TimeoutSeconds"] = "600", ["Gateway:Failover:DefaultTtftTimeoutMs"] = "600000",
            ["Gateway:Failover:DefaultNonStreamingTtftTimeoutMs"] = "500",
        });
        var fallback = await host.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var primary = await host.AddModelAsync(env.Upstream.BaseUrl, "late-first-token", fallbacks: [fallback]);
        var (key, _) = await host.CreateKeyAsync();
        using var client = host.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{primary}}","messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(["timeout", "ok"], await env.TrailOutcomesAsync(RequestId(response)));
    }

    [Fact]
    public async Task BreakHalfWay_FailsOverInvisibly_AndTheRowChargesBothAttempts()
    {
        var fallback = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", inputPrice: 1m, outputPrice: 4m, cachedPrice: 0.5m);
        var primary = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "drop-mid-stream", fallbacks: [fallback]);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{primary}}","messages":[{"role":"user","content":"{{marker}}"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var answer = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal(FakeOpenAI.Answer, answer["choices"]![0]!["message"]!["content"]!.GetValue<string>()); // one answer, not the broken one's start
        Assert.Equal(["protocol_error", "ok"], await env.TrailOutcomesAsync(RequestId(response)));
        var row = await env.WaitForUsageAsync(RequestId(response));
        // The broken attempt ("Hello from", estimated: it reported nothing) at the primary's prices, then the fallback's reported usage.
        var counter = new Gateway.Core.Tokens.TokenCounter();
        var prompt = counter.CountPrompt([new Gateway.Core.Wire.ChatMessage { Role = "user", Content = System.Text.Json.JsonSerializer.SerializeToElement(marker) }]);
        var partial = counter.Count("Hello from");
        Assert.Equal(((short)200, (short)2, true, true), (row.Status, row.Attempts, row.Fallback, row.UsageEstimated));
        Assert.Equal((prompt + FakeOpenAI.PromptTokens, partial + FakeOpenAI.CompletionTokens), (row.PromptTokens, row.CompletionTokens));
        Assert.Equal((prompt * 2.5m + partial * 10m) / 1_000_000m + (16 * 1m + 5 * 0.5m + 7 * 4m) / 1_000_000m, row.CostUsd);
    }

    [Fact]
    public async Task ClientLeavesWhileTheAnswerIsAssembled_TheRowChargesWhatTheProviderHadProduced()
    {
        // The fallback streams "tick " every 100 ms; the gateway has read some of it when the client goes.
        var fallback = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "slow-stream", inputPrice: 1m, outputPrice: 4m);
        var primary = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "status-500", fallbacks: [fallback]);
        var (key, keyId) = await Gateway.CreateKeyAsync();
        using var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = Gateway.BaseAddress };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        var marker = Guid.NewGuid().ToString("N");
        using var leave = new CancellationTokenSource();

        var call = client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{primary}}","messages":[{"role":"user","content":"{{marker}}"}]}"""), leave.Token);
        await Eventually.TrueAsync(() => Calls("slow-stream", marker) == 1, what: "the fallback called");
        await Task.Delay(1000, TestContext.Current.CancellationToken); // at least one tick read (the answer takes 5 s)
        await leave.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);

        await Eventually.TrueAsync(async () => (await env.UsageRowsForKeyAsync(keyId)).Count == 1, what: "one usage row");
        var row = (await env.UsageRowsForKeyAsync(keyId)).Single();
        Assert.Equal((short)499, row.Status);
        Assert.True(row.CompletionTokens > 0, "the provider billed the ticks it had produced");
        Assert.True(row.UsageEstimated);
        Assert.Equal((1m, 4m), (row.InputPricePerMTok!.Value, row.OutputPricePerMTok!.Value)); // at the prices of the candidate that was answering
    }

    [Fact]
    public async Task ModelThatRefusesToStream_IsAskedUnstreamedAtOnce_AndFromThenOn()
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "o1-2024-12-17");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var first = Guid.NewGuid().ToString("N");
        var second = Guid.NewGuid().ToString("N");

        var one = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"{{first}}"}]}"""));
        var two = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"{{second}}"}]}"""));

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (one.StatusCode, two.StatusCode));
        Assert.Equal((2, 1), (Calls("o1-2024-12-17", first), Calls("o1-2024-12-17", second))); // refused stream, then plain; then plain only
        Assert.Null(env.Upstream.Find(second)!.Json["stream"]);
    }

    [Fact]
    public async Task AnUnrelated400_IsNotRetriedUnstreamed()
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "status-400");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"{{marker}}"}]}"""));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(1, Calls("status-400", marker));
    }

    [Fact]
    public async Task UpstreamThatIgnoresStreamAndAnswersJson_IsServedAsItAnswered()
    {
        await using var upstream = await JsonOnlyUpstream.StartAsync();
        var alias = await Gateway.AddModelAsync(upstream.BaseUrl, "json-only");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var plain = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"hi"}]}"""));
        var streamed = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","stream":true,"messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (plain.StatusCode, streamed.StatusCode));
        var answer = JsonNode.Parse(await plain.Content.ReadAsStringAsync())!;
        var message = answer["choices"]![0]!["message"]!;
        Assert.Equal(("Plain JSON.", "get_weather", "{\"city\":\"Paris\"}", "tool_calls", "yes"), (message["content"]!.GetValue<string>(),
            message["tool_calls"]![0]!["function"]!["name"]!.GetValue<string>(), message["tool_calls"]![0]!["function"]!["arguments"]!.GetValue<string>(),
            answer["choices"]![0]!["finish_reason"]!.GetValue<string>(), answer["x_vendor"]!.GetValue<string>()));
        var events = ChatCompletionsTests.SseEvents(await streamed.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        Assert.Contains("Plain JSON.", events[0], StringComparison.Ordinal);
        var row = await env.WaitForUsageAsync(RequestId(plain));
        Assert.Equal((9, 4, false), (row.PromptTokens, row.CompletionTokens, row.UsageEstimated));
    }

    /// <summary>An OpenAI-compatible server that answers every chat call with one chat.completion, whatever "stream" says.</summary>
    private sealed class JsonOnlyUpstream : FakeServer
    {
        public static Task<JsonOnlyUpstream> StartAsync() => StartAsync(new JsonOnlyUpstream(), "/v1");

        protected override void Map(WebApplication app) => app.MapPost("/v1/chat/completions", () => Results.Text("""
                {"id":"chatcmpl-json","object":"chat.completion","created":1741569952,"model":"json-only","x_vendor":"yes",
                 "choices":[{"index":0,"message":{"role":"assistant","content":"Plain JSON.","tool_calls":[{"id":"call_1","type":"function",
                   "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],
                 "usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}
                """, "application/json"));
    }
}
