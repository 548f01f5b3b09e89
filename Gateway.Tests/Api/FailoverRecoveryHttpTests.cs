using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Dapper;
using Gateway.Tests.Fixtures;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Gateway.Tests.Api;

/// <summary>
/// The way back and the truth told, over real HTTP: a circuit that opened closes again once its provider recovers, a 429
/// reaches the client as a 429 with Retry-After and the provider's words, blocks nothing unrelated, and a provider that
/// echoes its credentials in an error never gets them to the client.
/// </summary>
public sealed class FailoverRecoveryHttpTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    private static string Chat(string model, string content, bool stream = false) =>
        $$"""{"model":"{{model}}","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"{{content}}"}]}""";

    /// <summary>
    /// An OpenAI-compatible upstream whose answer the test switches: <see cref="Status"/> 200 answers a chat.completion
    /// (https://platform.openai.com/docs/api-reference/chat/object), any other status OpenAI's error object; with
    /// <see cref="EchoCredentials"/> the error message repeats the Authorization header it received, as a careless proxy does.
    /// </summary>
    private sealed class SwitchableUpstream : FakeServer
    {
        public volatile int Status = 200;
        public volatile bool EchoCredentials;

        public static Task<SwitchableUpstream> StartAsync() => StartAsync(new SwitchableUpstream(), "/v1");

        protected override void Map(WebApplication app) => app.MapPost("/v1/chat/completions", async (HttpContext http) =>
        {
            using var reader = new StreamReader(http.Request.Body, Encoding.UTF8);
            var body = await reader.ReadToEndAsync();
            Requests.Enqueue(new RecordedRequest(body, http.Request.Headers.Authorization.ToString()));
            var status = Status;
            if (status != 200)
            {
                http.Response.StatusCode = status;
                var message = EchoCredentials ? $"Invalid request. You sent: {http.Request.Headers.Authorization}" : $"Switchable upstream says {status}.";
                await http.Response.WriteAsJsonAsync(new JsonObject
                {
                    ["error"] = new JsonObject { ["message"] = message, ["type"] = "invalid_request_error", ["param"] = null, ["code"] = null },
                });
                return;
            }
            var model = JsonNode.Parse(body)!["model"]!.GetValue<string>();
            http.Response.ContentType = "application/json";
            await http.Response.WriteAsync($$$"""
                {"id":"chatcmpl-switch","object":"chat.completion","created":1741569952,"model":"{{{model}}}",
                 "choices":[{"index":0,"message":{"role":"assistant","content":"back again","refusal":null},"logprobs":null,"finish_reason":"stop"}],
                 "usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}
                """);
        });
    }

    /// <summary>The request's whole usage row as JSON, once stored.</summary>
    private async Task<string> StoredRowAsync(HttpResponseMessage response)
    {
        var requestId = Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single());
        await env.WaitForUsageAsync(requestId);
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        return (await db.ExecuteScalarAsync<string>("SELECT to_jsonb(u)::text FROM usage_events u WHERE request_id = @requestId", new { requestId }))!;
    }

    [Fact]
    public async Task OpenCircuit_ClosesAfterItsBreakOnceTheProviderRecovers()
    {
        await using var upstream = await SwitchableUpstream.StartAsync();
        upstream.Status = 503;
        // A host of its own with a short break, so its breakers hold only this test's provider.
        var alias = await Gateway.AddModelAsync(upstream.BaseUrl, "gpt-4o-mini", inputPrice: 1m, outputPrice: 4m, everyHost: true);
        var provider = alias.Split('/')[0];
        var (key, _) = await Gateway.CreateKeyAsync();
        await using var host = new GatewayHost(env.Postgres.ConnectionString, new()
        {
            ["Gateway:Failover:BreakerMinimumThroughput"] = "2",
            ["Gateway:Failover:BreakerBreakSeconds"] = "1",
        });
        await GatewayHost.WaitUntilAsync(() => host.Services.GetRequiredService<Gateway.Core.Catalog.ModelCatalog>().Find(alias) is not null
            && host.Services.GetRequiredService<Gateway.Core.Keys.KeyCache>().Authenticate(key).Key is not null, 30_000);
        using var client = host.Client(key);
        using var health = host.Client();

        for (var i = 0; i < 2; i++)
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await client.PostAsync("/v1/chat/completions", Json(Chat(alias, "hi")))).StatusCode);
        var refused = await client.PostAsync("/v1/chat/completions", Json(Chat(alias, "hi")));
        var callsWhileOpen = upstream.Requests.Count;
        var stateWhileOpen = (await health.GetFromJsonAsync<JsonObject>("/health/upstreams"))!["checks"]!["upstreams"]!["data"]![provider]?.GetValue<string>();

        upstream.Status = 200; // the provider is back
        HttpResponseMessage answered;
        var deadline = Environment.TickCount64 + 30_000;
        do
        {
            await Task.Delay(100);
            answered = await client.PostAsync("/v1/chat/completions", Json(Chat(alias, "hi")));
        }
        while (answered.StatusCode != HttpStatusCode.OK && Environment.TickCount64 < deadline);

        Assert.Equal(2, callsWhileOpen); // the open circuit refused the third without a call...
        Assert.Equal((HttpStatusCode.ServiceUnavailable, "0"), (refused.StatusCode, refused.Headers.GetValues("x-gateway-attempts").Single()));
        Assert.NotNull(refused.Headers.RetryAfter?.Delta); // ...telling the client when to come back
        Assert.True(stateWhileOpen is "Open" or "HalfOpen", stateWhileOpen);
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode); // ...and a probe after the break closed it
        var upstreams = (await health.GetFromJsonAsync<JsonObject>("/health/upstreams"))!;
        Assert.Equal("Closed", upstreams["checks"]!["upstreams"]!["data"]![provider]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Json(Chat(alias, "hi")))).StatusCode);
    }

    [Fact]
    public async Task RateLimitedModel_ClientGets429WithRetryAfter_AndUnrelatedRequestsStillReachTheProvider()
    {
        var provider = "limited-" + Guid.NewGuid().ToString("N")[..8];
        var (limited, sibling) = (provider + "/status-429", provider + "/gpt-4o-mini");
        using (var admin = Gateway.Admin())
        {
            (await admin.PostAsJsonAsync("/admin/providers", new JsonObject
            {
                ["name"] = provider, ["protocol"] = "openai", ["base_url"] = env.Upstream.BaseUrl, ["secret"] = "sk-fake-upstream-secret",
            })).EnsureSuccessStatusCode();
            foreach (var (alias, model) in new[] { (limited, "status-429"), (sibling, "gpt-4o-mini") })
                (await admin.PostAsJsonAsync("/admin/models", new JsonObject
                {
                    ["alias"] = alias, ["provider"] = provider, ["upstream_model"] = model, ["input_price_per_mtok"] = 1, ["output_price_per_mtok"] = 4,
                })).EnsureSuccessStatusCode();
        }
        await GatewayHost.WaitUntilAsync(() => Gateway.Services.GetRequiredService<Gateway.Core.Catalog.ModelCatalog>().Find(sibling) is not null);
        var (key, _) = await Gateway.CreateKeyAsync();
        var (otherKey, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        using var otherClient = Gateway.Client(otherKey);
        var marker = Guid.NewGuid().ToString("N");
        int Calls(string model) => env.Upstream.Requests.Count(r => r.Body.Contains(marker, StringComparison.Ordinal) && r.Json["model"]!.GetValue<string>() == model);

        var first = await client.PostAsync("/v1/chat/completions", Json(Chat(limited, marker)));
        var sameModelOtherKey = await otherClient.PostAsync("/v1/chat/completions", Json(Chat(limited, marker, stream: true)));
        var otherModel = await client.PostAsync("/v1/chat/completions", Json(Chat(sibling, marker)));

        Assert.Equal(HttpStatusCode.TooManyRequests, first.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(7), first.Headers.RetryAfter?.Delta);
        var error = (await first.Content.ReadFromJsonAsync<JsonObject>())!["error"]!;
        Assert.Equal(("rate_limit_error", "rate_limit_exceeded"), (error["type"]!.GetValue<string>(), error["code"]!.GetValue<string>()));
        Assert.Contains(provider, error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("Fake upstream says 429.", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        // The model has no other candidate: the provider is asked again rather than refused on a guess.
        Assert.Equal(HttpStatusCode.TooManyRequests, sameModelOtherKey.StatusCode);
        Assert.Equal(2, Calls("status-429"));
        Assert.Equal(HttpStatusCode.OK, otherModel.StatusCode);
        Assert.Equal(1, Calls("gpt-4o-mini"));
    }

    [Theory]
    [InlineData(400, false)]
    [InlineData(400, true)]
    [InlineData(500, false)]
    [InlineData(500, true)]
    public async Task UpstreamEchoesItsCredentials_TheClientAndTheUsageRowNeverSeeThem(int status, bool stream)
    {
        await using var upstream = await SwitchableUpstream.StartAsync();
        (upstream.Status, upstream.EchoCredentials) = (status, true);
        // Not shaped like a key, so only knowing what was sent can find it.
        var secret = "hunter2-" + Guid.NewGuid().ToString("N")[..10];
        var alias = await Gateway.AddModelAsync(upstream.BaseUrl, "gpt-4o-mini", secret: secret);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json(Chat(alias, "hi", stream)));
        var body = await response.Content.ReadAsStringAsync();

        Assert.Contains("Bearer", Assert.Single(upstream.Requests).Authorization, StringComparison.Ordinal);
        Assert.Equal(status == 400 ? HttpStatusCode.BadRequest : HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Contains("You sent: Bearer [REDACTED]", body, StringComparison.Ordinal); // the provider's words, minus the secret
        Assert.DoesNotContain(secret, body, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, await StoredRowAsync(response), StringComparison.Ordinal);
        Assert.DoesNotContain(Gateway.Logs.Lines, line => line.Contains(secret, StringComparison.Ordinal));
    }

    [Fact]
    public async Task StreamBreaksMidAnswer_WithNoFallback_TheTrailRecordsTheBreak()
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "drop-mid-stream");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json(Chat(alias, "hi", stream: true)));
        var events = ChatCompletionsTests.SseEvents(await response.Content.ReadAsStringAsync());

        Assert.Equal("[DONE]", events[^1]);
        Assert.Contains("\"error\"", events[^2], StringComparison.Ordinal);
        var trail = JsonNode.Parse(await StoredRowAsync(response))!["attempt_trail"]!.AsArray();
        Assert.EndsWith("_mid_stream", Assert.Single(trail)!["outcome"]!.GetValue<string>(), StringComparison.Ordinal);
    }
}
