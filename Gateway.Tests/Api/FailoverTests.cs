using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Dapper;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Gateway.Tests.Api;

/// <summary>An outage of one provider is invisible to the client: fallback chains, breakers, cool-downs, first-token deadlines.</summary>
public sealed class FailoverTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    private async Task<(string Primary, string Fallback)> ChainAsync(string primaryUpstreamModel, int? ttftTimeoutMs = null, int? timeoutMs = null)
    {
        var fallback = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", inputPrice: 1m, outputPrice: 4m, cachedPrice: 0.5m);
        var primary = await Gateway.AddModelAsync(env.Upstream.BaseUrl, primaryUpstreamModel, fallbacks: [fallback], ttftTimeoutMs: ttftTimeoutMs, timeoutMs: timeoutMs);
        return (primary, fallback);
    }

    private int CallsTo(string upstreamModel, string marker) =>
        env.Upstream.Requests.Count(r => r.Body.Contains(marker, StringComparison.Ordinal) && r.Json["model"]!.GetValue<string>() == upstreamModel);

    private async Task<string?> TrailAsync(Guid requestId)
    {
        await env.WaitForUsageAsync(requestId);
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        return await db.ExecuteScalarAsync<string>("SELECT attempt_trail::text FROM usage_events WHERE request_id = @requestId", new { requestId });
    }

    private static Guid RequestId(HttpResponseMessage response) => Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single());

    [Theory]
    [InlineData("status-503", "overloaded")]
    [InlineData("status-500", "server_error")]
    [InlineData("status-401", "auth_rejected")]
    [InlineData("bad-json", "protocol_error")]
    public async Task PrimaryFails_FallbackAnswersAndTheRecordSaysSo(string primaryModel, string outcome)
    {
        var (primary, fallback) = await ChainAsync(primaryModel);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{primary}}","messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(("2", "true", fallback.Split('/')[0]), (response.Headers.GetValues("x-gateway-attempts").Single(),
            response.Headers.GetValues("x-gateway-fallback").Single(), response.Headers.GetValues("x-gateway-provider").Single()));
        var row = await env.WaitForUsageAsync(RequestId(response));
        Assert.Equal(((short)200, primary, (decimal?)1m, (decimal?)4m, true), (row.Status, row.AskedModel, row.InputPricePerMTok, row.OutputPricePerMTok, row.Fallback)); // the fallback's prices
        var trail = JsonNode.Parse((await TrailAsync(RequestId(response)))!)!.AsArray();
        Assert.Equal([outcome, "ok"], trail.Select(a => a!["outcome"]!.GetValue<string>()));
    }

    [Fact]
    public async Task PrimaryRateLimitedWithRetryAfter_IsSkippedUntilThen()
    {
        var (primary, _) = await ChainAsync("status-429");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var first = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{primary}}","messages":[{"role":"user","content":"{{marker}}"}]}"""));
        var second = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{primary}}","messages":[{"role":"user","content":"{{marker}}"}]}"""));

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (first.StatusCode, second.StatusCode));
        Assert.Equal(1, CallsTo("status-429", marker)); // the fake sends Retry-After: 7
        Assert.Contains("cooling_down", await TrailAsync(RequestId(second)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RepeatedFailures_OpenTheCircuit_ThenThePrimaryIsNotCalled()
    {
        // A host of its own, so its breakers and metrics hold only this test's providers; the provider's secret is an env:
        // reference, which every host resolves (a literal is encrypted with the creating host's key ring).
        Environment.SetEnvironmentVariable("GATEWAY_SECRET_CIRCUIT_TEST", "sk-fake-upstream-secret");
        var (provider, backup) = ("circuit-" + Guid.NewGuid().ToString("N")[..8], "backup-" + Guid.NewGuid().ToString("N")[..8]);
        var (primary, fallback) = (provider + "/status-502", backup + "/gpt-4o-mini");
        using (var admin = Gateway.Admin())
        {
            foreach (var name in (string[])[provider, backup])
            {
                (await admin.PostAsync("/admin/providers", Json($$"""
                    {"name":"{{name}}","protocol":"openai","base_url":"{{env.Upstream.BaseUrl}}","secret_ref":"env:GATEWAY_SECRET_CIRCUIT_TEST"}
                    """))).EnsureSuccessStatusCode();
            }
            (await admin.PostAsync("/admin/models", Json($$"""
                {"alias":"{{fallback}}","provider":"{{backup}}","upstream_model":"gpt-4o-mini","input_price_per_mtok":1,"output_price_per_mtok":4}
                """))).EnsureSuccessStatusCode();
            (await admin.PostAsync("/admin/models", Json($$"""
                {"alias":"{{primary}}","provider":"{{provider}}","upstream_model":"status-502","input_price_per_mtok":1,"output_price_per_mtok":4,"fallbacks":["{{fallback}}"]}
                """))).EnsureSuccessStatusCode();
        }
        var (key, _) = await Gateway.CreateKeyAsync();
        await using var host = new GatewayHost(env.Postgres.ConnectionString);
        await GatewayHost.WaitUntilAsync(() => host.Services.GetRequiredService<Gateway.Core.Catalog.ModelCatalog>().Find(primary) is not null
            && host.Services.GetRequiredService<Gateway.Core.Keys.KeyCache>().Authenticate(key).Key is not null);
        using var client = host.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        for (var i = 0; i < 8; i++)
        {
            var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{primary}}","messages":[{"role":"user","content":"{{marker}}"}]}"""));
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        }

        Assert.Equal(5, CallsTo("status-502", marker)); // opens after 5 failures (ratio 0.5, minimum throughput 5)
        Assert.Equal(8, CallsTo("gpt-4o-mini", marker));
        using var health = host.Client();
        var upstreams = (await health.GetFromJsonAsync<JsonObject>("/health/upstreams"))!;
        Assert.Equal("Degraded", upstreams["status"]!.GetValue<string>());
        Assert.Equal("Open", upstreams["checks"]!["upstreams"]!["data"]![primary.Split('/')[0]]!.GetValue<string>());
        Assert.Equal("Open", upstreams["checks"]!["upstreams"]!["data"]![primary.Split('/')[0] + "/status-502"]!.GetValue<string>());

        var metrics = await health.GetStringAsync("/metrics");
        var circuit = metrics.Split('\n').Where(line => line.StartsWith("gateway_provider_circuit_state{", StringComparison.Ordinal)).ToList();
        Assert.True(circuit.Any(line => line.Contains($"provider=\"{primary.Split('/')[0]}\"", StringComparison.Ordinal)
            && line.EndsWith(" 1", StringComparison.Ordinal)), string.Join("\n", circuit));
        Assert.Contains("gen_ai_client_token_usage", metrics, StringComparison.Ordinal);
        Assert.DoesNotContain(key, metrics, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("hang")]
    [InlineData("late-first-token")]
    [InlineData("drop-before-content")]
    [InlineData("status-503")]
    [InlineData("bad-json")]
    public async Task Stream_PrimaryFailsBeforeItsFirstToken_ClientGetsOneCompleteStreamFromTheFallback(string primaryModel)
    {
        // The primary's whole-call limit (2 min) is far past the client's 30 s timeout and the fake's 30 s late first token,
        // so only the 800 ms first-token deadline can end a silent primary in time for the fallback to answer.
        var (primary, _) = await ChainAsync(primaryModel, ttftTimeoutMs: 800, timeoutMs: 120_000);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var clock = Stopwatch.StartNew();

        var response = await client.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"{{primary}}","stream":true,"messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = ChatCompletionsTests.SseEvents(await response.Content.ReadAsStringAsync());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}"); // well under the primary's 2 min limit
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.DoesNotContain(chunks, c => c["error"] is not null);
        Assert.Single(chunks.Select(c => c["id"]!.GetValue<string>()).Distinct());
        Assert.Single(chunks, c => c["choices"]![0]!["delta"]!["role"] is not null); // the primary's role chunk never reached the client
        Assert.Equal("Hello from the fake upstream.", string.Concat(chunks.Select(c => c["choices"]![0]!["delta"]!["content"]?.GetValue<string>())));
        Assert.Equal("true", response.Headers.GetValues("x-gateway-fallback").Single());
        var row = await env.WaitForUsageAsync(RequestId(response));
        Assert.Equal(((short)200, (short)2, false), (row.Status, row.Attempts, row.UsageEstimated));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Stream_BreaksAfterTokensWereSent_ContinuesOnTheFallbackUnderTheSameId(bool clientWantsUsage)
    {
        var (primary, _) = await ChainAsync("drop-mid-stream");
        var (key, keyId) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{primary}}","stream":true{{(clientWantsUsage ? ",\"stream_options\":{\"include_usage\":true}" : "")}},
             "messages":[{"role":"user","content":"{{marker}}"}]}
            """));

        var events = ChatCompletionsTests.SseEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.DoesNotContain(chunks, c => c["error"] is not null);
        Assert.Single(chunks.Select(c => c["id"]!.GetValue<string>()).Distinct());
        Assert.Single(chunks, c => c["choices"]!.AsArray().FirstOrDefault()?["delta"]?["role"] is not null);
        // "Hello from" came from the primary before it dropped; the fake fallback then answers in full, and the part the
        // client already had is not repeated.
        Assert.Equal("Hello from the fake upstream.",
            string.Concat(chunks.Select(c => c["choices"]!.AsArray().FirstOrDefault()?["delta"]?["content"]?.GetValue<string>())));

        var continuation = env.Upstream.Requests.Last(r => r.Body.Contains(marker, StringComparison.Ordinal)).Json;
        Assert.Equal("gpt-4o-mini", continuation["model"]!.GetValue<string>());
        var messages = continuation["messages"]!.AsArray();
        Assert.Equal(("assistant", "Hello from"), (messages[^2]!["role"]!.GetValue<string>(), messages[^2]!["content"]!.GetValue<string>()));
        Assert.Equal("user", messages[^1]!["role"]!.GetValue<string>());

        var row = await env.WaitForUsageAsync(RequestId(response));
        Assert.Equal(((short)200, (short)2, true, true), (row.Status, row.Attempts, row.Fallback, row.UsageEstimated));
        // The broken attempt, estimated (nothing reported), at the primary's prices ($2.50/$10); the continuation
        // as its provider reported it (21 prompt of which 5 cached, 7 completion) at the fallback's ($1/$4, cached $0.50).
        var counter = new Gateway.Core.Tokens.TokenCounter();
        var firstPrompt = counter.CountPrompt([new Gateway.Core.Wire.ChatMessage { Role = "user", Content = System.Text.Json.JsonSerializer.SerializeToElement(marker) }]);
        var firstCompletion = counter.Count("Hello from");
        Assert.Equal((firstPrompt + 21, firstCompletion + 7), (row.PromptTokens, row.CompletionTokens));
        Assert.Equal((firstPrompt * 2.5m + firstCompletion * 10m) / 1_000_000m + (16 * 1m + 5 * 0.5m + 7 * 4m) / 1_000_000m, row.CostUsd);
        var trail = JsonNode.Parse((await TrailAsync(RequestId(response)))!)!.AsArray();
        Assert.Equal(["protocol_error_mid_stream", "ok"], trail.Select(a => a!["outcome"]!.GetValue<string>()));
        if (clientWantsUsage)
        {
            var usage = chunks[^1]["usage"]!;
            Assert.Equal((row.PromptTokens, row.CompletionTokens), (usage["prompt_tokens"]!.GetValue<int>(), usage["completion_tokens"]!.GetValue<int>()));
        }
        Assert.Equal(keyId, row.KeyId);
    }

    [Fact]
    public async Task Stream_ContinuationFailsToo_EndsWithAnErrorEventAndDone()
    {
        var fallback = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "status-503");
        var primary = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "drop-mid-stream", fallbacks: [fallback]);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{primary}}","stream":true,"messages":[{"role":"user","content":"hi"}]}"""));

        var events = ChatCompletionsTests.SseEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        Assert.Contains("\"error\":{", events[^2], StringComparison.Ordinal);
        var trail = JsonNode.Parse((await TrailAsync(RequestId(response)))!)!.AsArray();
        Assert.Equal(["protocol_error_mid_stream", "overloaded"], trail.Select(a => a!["outcome"]!.GetValue<string>()));
        var row = await env.WaitForUsageAsync(RequestId(response));
        Assert.Equal(((short)502, false), (row.Status, row.Fallback));
        Assert.True(row.CompletionTokens > 0); // what the client received is still charged
    }

    [Fact]
    public async Task ProviderWideFailure_SkipsTheSameProvidersOtherModelsInThatRequest()
    {
        var elsewhere = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var primary = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "status-503");
        var provider = primary.Split('/')[0];
        var sibling = provider + "/sibling";
        using var admin = Gateway.Admin();
        (await admin.PutAsync($"/admin/models/{sibling}", Json($$"""{"provider":"{{provider}}","upstream_model":"gpt-4o-mini"}"""))).EnsureSuccessStatusCode();
        (await admin.PutAsync($"/admin/models/{primary}", Json($$"""
            {"provider":"{{provider}}","upstream_model":"status-503","fallbacks":["{{sibling}}","{{elsewhere}}"]}
            """))).EnsureSuccessStatusCode();
        await GatewayHost.WaitUntilAsync(() => Gateway.Services.GetService(typeof(Gateway.Core.Catalog.ModelCatalog)) is Gateway.Core.Catalog.ModelCatalog c
            && c.Find(primary)!.Fallbacks!.Count == 2 && c.Find(sibling) is not null);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{primary}}","messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(elsewhere.Split('/')[0], response.Headers.GetValues("x-gateway-provider").Single());
        Assert.Equal("2", response.Headers.GetValues("x-gateway-attempts").Single());
        var trail = JsonNode.Parse((await TrailAsync(RequestId(response)))!)!.AsArray();
        Assert.Equal(["overloaded", "provider_failed", "ok"], trail.Select(a => a!["outcome"]!.GetValue<string>()));
    }

    [Fact]
    public async Task EveryCandidateDown_IsOneCleanErrorNamingTheAttempts()
    {
        var fallback = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "status-500");
        var primary = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "status-503", fallbacks: [fallback]);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{primary}}","stream":true,"messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode); // the last candidate's failure
        Assert.Equal("2", response.Headers.GetValues("x-gateway-attempts").Single());
        Assert.NotNull((await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]);
        var trail = JsonNode.Parse((await TrailAsync(RequestId(response)))!)!.AsArray();
        Assert.Equal(["overloaded", "server_error"], trail.Select(a => a!["outcome"]!.GetValue<string>()));
    }

    [Fact]
    public async Task ModelDeadline_BoundsAHangingCall_ThenTheFallbackAnswers()
    {
        // A host whose global upstream limit (10 min) is far past the client's 30 s timeout: only the model's own
        // 700 ms deadline can end the hanging call in time for the fallback to answer.
        await using var host = new GatewayHost(env.Postgres.ConnectionString, new() { ["Gateway:Upstream:TimeoutSeconds"] = "600" });
        var fallback = await host.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var primary = await host.AddModelAsync(env.Upstream.BaseUrl, "hang", fallbacks: [fallback], timeoutMs: 700);
        var (key, _) = await host.CreateKeyAsync();
        using var client = host.Client(key);
        var clock = Stopwatch.StartNew();

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{primary}}","messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}"); // well under the 10 min global limit
        var trail = JsonNode.Parse((await TrailAsync(RequestId(response)))!)!.AsArray();
        Assert.Equal(["timeout", "ok"], trail.Select(a => a!["outcome"]!.GetValue<string>()));
    }

    [Fact]
    public async Task CallerError_GoesBackToTheCaller_WithoutTryingTheFallback()
    {
        var (primary, _) = await ChainAsync("status-400");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{primary}}","messages":[{"role":"user","content":"{{marker}}"}]}"""));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(0, CallsTo("gpt-4o-mini", marker));
        Assert.Equal("1", response.Headers.GetValues("x-gateway-attempts").Single());
    }
}
