using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Core.Failover;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Api;

/// <summary>
/// Every way a provider fails × streamed or not × with a fallback or alone: the client's status, headers and body, the usage
/// row and its attempt trail, and the breaker or cool-down left behind. Each case has providers of its own, so no case
/// sees another's breakers.
/// </summary>
public sealed class FaultMatrixTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    /// <param name="Outcome">The attempt trail's word for the failed candidate.</param>
    /// <param name="Alone">What the client gets when no fallback exists (mid-stream: the usage row's status; a streaming client has a 200).</param>
    /// <param name="RetryAfter">The wait the provider named, which the client hears and the model cools down for.</param>
    /// <param name="MidStream">The fault comes after the first token. A non-streaming request is called streaming and assembled, so it
    /// fails over the same way, with nothing sent yet: its trail says the plain outcome.</param>
    public sealed record Fault(string Protocol, string Model, string Outcome, HttpStatusCode Alone, string AloneCode, int? RetryAfter = null,
        bool MidStream = false);

    private static readonly Dictionary<string, Fault> Faults = new()
    {
        ["503"] = new("openai", "status-503", "overloaded", HttpStatusCode.ServiceUnavailable, "upstream_unavailable"),
        ["500"] = new("openai", "status-500", "server_error", HttpStatusCode.BadGateway, "upstream_error"),
        ["529"] = new("openai", "status-529", "overloaded", HttpStatusCode.ServiceUnavailable, "upstream_unavailable"),
        ["429 + Retry-After"] = new("openai", "status-429", "rate_limited", HttpStatusCode.TooManyRequests, "rate_limit_exceeded", RetryAfter: 7),
        ["Gemini 429 + RetryInfo"] = new("gemini", "status-429", "rate_limited", HttpStatusCode.TooManyRequests, "rate_limit_exceeded", RetryAfter: 37),
        ["hang before headers"] = new("openai", "hang", "timeout", HttpStatusCode.GatewayTimeout, "upstream_timeout"),
        ["slow first token"] = new("openai", "late-first-token", "timeout", HttpStatusCode.GatewayTimeout, "upstream_timeout"),
        ["drop mid-stream"] = new("openai", "drop-mid-stream", "protocol_error", HttpStatusCode.BadGateway, "upstream_error", MidStream: true),
        ["in-stream error event"] = new("anthropic", "claude-sonnet-4-5-overloaded-midstream", "overloaded", HttpStatusCode.ServiceUnavailable,
            "upstream_unavailable", MidStream: true),
        ["malformed JSON"] = new("openai", "bad-json", "protocol_error", HttpStatusCode.BadGateway, "upstream_error"),
    };

    public static TheoryData<string, bool, bool> Cases()
    {
        var cases = new TheoryData<string, bool, bool>();
        foreach (var (name, fault) in Faults)
            foreach (var stream in new[] { false, true })
                foreach (var withFallback in new[] { true, false })
                    cases.Add(name, stream, withFallback);
        return cases;
    }

    private Task<string> AddPrimaryAsync(Fault fault, string[]? fallbacks) => fault.Protocol switch
    {
        "gemini" => Gateway.AddModelAsync(env.Gemini.BaseUrl, fault.Model, protocol: "gemini", secret: FakeGemini.ApiKey, fallbacks: fallbacks, ttftTimeoutMs: 800),
        "anthropic" => Gateway.AddModelAsync(env.Anthropic.BaseUrl, fault.Model, protocol: "anthropic", secret: FakeAnthropic.ApiKey, fallbacks: fallbacks, ttftTimeoutMs: 800),
        _ => Gateway.AddModelAsync(env.Upstream.BaseUrl, fault.Model, fallbacks: fallbacks, ttftTimeoutMs: 800),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task ProviderFault_ClientRowTrailAndHealthSayWhatHappened(string faultName, bool stream, bool withFallback)
    {
        var fault = Faults[faultName];
        var outcome = fault.MidStream && stream ? fault.Outcome + "_mid_stream" : fault.Outcome;
        var fallback = withFallback ? await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini") : null;
        var primary = await AddPrimaryAsync(fault, fallback is null ? null : [fallback]);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", new StringContent(
            $$"""{"model":"{{primary}}","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"hi"}]}""",
            Encoding.UTF8, "application/json"));
        var body = await response.Content.ReadAsStringAsync();
        var requestId = Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single());
        var row = await env.WaitForUsageAsync(requestId);
        var trail = await env.TrailOutcomesAsync(requestId);

        if (withFallback)
        {
            // Invisible to the client: one complete answer from the fallback.
            Assert.True(response.StatusCode == HttpStatusCode.OK, body);
            Assert.Equal([outcome, "ok"], trail);
            Assert.Equal(((short)200, true), (row.Status, row.Fallback));
            if (!(fault.MidStream && stream))
                Assert.Equal(("2", "true"), (response.Headers.GetValues("x-gateway-attempts").Single(), response.Headers.GetValues("x-gateway-fallback").Single()));
            if (stream)
            {
                var events = ChatCompletionsTests.SseEvents(body);
                Assert.Equal("[DONE]", events[^1]);
                Assert.DoesNotContain(events, e => e.StartsWith("{\"error\"", StringComparison.Ordinal));
                Assert.EndsWith("upstream.", Text(events), StringComparison.Ordinal);
            }
            else
            {
                Assert.Equal(FakeOpenAI.Answer, JsonNode.Parse(body)!["choices"]![0]!["message"]!["content"]!.GetValue<string>());
            }
        }
        else if (fault.MidStream && stream)
        {
            // Bytes were out: a 200 that ends with one error event and [DONE], never a silent stop.
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var events = ChatCompletionsTests.SseEvents(body);
            Assert.Equal("[DONE]", events[^1]);
            Assert.Equal(fault.AloneCode, JsonNode.Parse(events[^2])!["error"]!["code"]!.GetValue<string>());
            Assert.Equal([outcome], trail);
            Assert.Equal((short)fault.Alone, row.Status);
        }
        else
        {
            Assert.Equal(fault.Alone, response.StatusCode);
            Assert.Equal(fault.AloneCode, JsonNode.Parse(body)!["error"]!["code"]!.GetValue<string>());
            Assert.Equal(fault.RetryAfter is { } wait ? TimeSpan.FromSeconds(wait) : null, response.Headers.RetryAfter?.Delta);
            Assert.Equal([outcome], trail);
            Assert.Equal(((short)fault.Alone, fault.AloneCode), (row.Status, row.ErrorKind));
        }

        // What this instance now believes of the failed model: cooling down for the named wait, or one failure counted.
        var modelKey = ProviderHealth.ModelKey(primary.Split('/')[0], fault.Model);
        var states = Gateway.Services.GetRequiredService<ProviderHealth>().States();
        Assert.Equal(fault.RetryAfter is null ? "Closed" : "CoolingDown", states.GetValueOrDefault(modelKey));
    }

    private static string Text(string[] events) => string.Concat(events[..^1]
        .Select(e => JsonNode.Parse(e)!["choices"]?.AsArray() is [{ } choice, ..] ? choice["delta"]?["content"]?.GetValue<string>() : null));

}
