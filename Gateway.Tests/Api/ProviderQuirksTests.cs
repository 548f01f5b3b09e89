using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

/// <summary>OpenAI-compatible APIs that differ from OpenAI, handled by the provider row's settings.</summary>
public sealed class ProviderQuirksTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    private static JsonObject Quirks => new()
    {
        ["max_tokens_field"] = "max_tokens",
        ["drop_params"] = new JsonArray("logit_bias", "user"),
        ["stream_usage"] = false,
    };

    [Fact]
    public async Task Quirks_RenameAndDropFieldsBeforeTheUpstreamSeesThem()
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", settings: Quirks);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{alias}}","max_completion_tokens":50,"logit_bias":{"1":1},"user":"u1","seed":7,
             "messages":[{"role":"user","content":"{{marker}}"}]}
            """));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = env.Upstream.Find(marker)!.Json;
        Assert.Equal(50, sent["max_tokens"]!.GetValue<int>());
        Assert.False(sent.ContainsKey("max_completion_tokens"));
        Assert.False(sent.ContainsKey("logit_bias"));
        Assert.False(sent.ContainsKey("user"));
        Assert.Equal(7, sent["seed"]!.GetValue<int>());
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal("u1", row.EndUser); // dropped upstream, still metered
    }

    [Fact]
    public async Task Quirks_NoStreamUsage_StreamIsNotAskedForUsageAndIsMeteredAsEstimated()
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", settings: Quirks);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"{{alias}}","stream":true,"messages":[{"role":"user","content":"{{marker}}"}]}"""));

        Assert.EndsWith("data: [DONE]\n\n", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False(env.Upstream.Find(marker)!.Json.ContainsKey("stream_options"));
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.True(row.UsageEstimated);
        Assert.True(row.PromptTokens > 0 && row.CompletionTokens > 0 && row.CostUsd > 0);
    }

    [Fact]
    public async Task Quirks_NoStreamUsage_ANonStreamingRequestKeepsTheProvidersOwnUsage()
    {
        // Such an API reports usage only unstreamed: assembling its stream would trade its real numbers for an estimate.
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", settings: Quirks);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var usage = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["usage"];
        Assert.Equal((FakeOpenAI.PromptTokens, FakeOpenAI.CompletionTokens), (usage?["prompt_tokens"]?.GetValue<int>(), usage?["completion_tokens"]?.GetValue<int>()));
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((FakeOpenAI.PromptTokens, FakeOpenAI.CompletionTokens, false), (row.PromptTokens, row.CompletionTokens, row.UsageEstimated));
    }

    [Theory]
    [InlineData("""{"max_tokens_field":"max_output"}""")]
    [InlineData("""{"drop_params":["messages"]}""")]
    [InlineData("""{"no_such_setting":true}""")]
    public async Task Quirks_InvalidSettings_AreRefusedByTheAdminApi(string settings)
    {
        using var admin = Gateway.Admin();

        var response = await admin.PostAsync("/admin/providers", Json($$"""
            {"name":"bad-{{Guid.NewGuid():N}}","protocol":"openai","base_url":"http://127.0.0.1:1/v1","settings":{{settings}}}
            """));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.NotNull((await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]);
    }
}
