using System.Net;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

public sealed class EmbeddingsTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    [Fact]
    public async Task Embeddings_AreReservedAgainstTheHardCap_AndRefusedPastIt()
    {
        var (key, keyId) = await Gateway.CreateKeyFromJsonAsync("""{"name":"embed-capped","hard_cap_usd":0.000005}""");
        using var client = Gateway.Client(key);

        // "hello world" is 2 tokens: $0.000002 at the mock model's $1 per million; two fit under the cap, a third would not.
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 3; i++)
            statuses.Add((await client.PostAsync("/v1/embeddings", Json("""{"model":"mock","input":"hello world"}"""))).StatusCode);
        var refused = await client.PostAsync("/v1/embeddings", Json("""{"model":"mock","input":"hello world"}"""));

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], statuses);
        Assert.Equal("insufficient_quota", (await refused.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["code"]!.GetValue<string>());
        var rows = await Eventually.UntilAsync(() => env.UsageRowsForKeyAsync(keyId), r => r.Count >= 4, pause: TimeSpan.FromMilliseconds(50));
        Assert.Equal([200, 200, 429, 429], rows.Select(r => (int)r.Status));
        Assert.Equal(0.000004m, rows.Sum(r => r.CostUsd));
    }

    [Fact]
    public async Task Embeddings_MockModel_AnswersOpenAIsListAndIsMetered()
    {
        var (key, keyId) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/embeddings", Json("""{"model":"mock","input":["hello world","second"],"user":"bob"}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.Equal("list", body["object"]!.GetValue<string>());
        var data = body["data"]!.AsArray();
        Assert.Equal([0, 1], data.Select(d => d!["index"]!.GetValue<int>()));
        Assert.All(data, d => Assert.Equal(8, d!["embedding"]!.AsArray().Count));
        var prompt = body["usage"]!["prompt_tokens"]!.GetValue<int>();
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((keyId, "bob", prompt, 0, false, false), (row.KeyId, row.EndUser, row.PromptTokens, row.CompletionTokens, row.Streamed, row.UsageEstimated));
        Assert.Equal(prompt * 1m / 1_000_000m, row.CostUsd);
    }

    [Fact]
    public async Task Embeddings_Base64Encoding_DecodesToTheSameFloats()
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var floats = (await (await client.PostAsync("/v1/embeddings", Json("""{"model":"mock","input":"same text"}"""))).Content.ReadFromJsonAsync<JsonObject>())!;
        var base64 = (await (await client.PostAsync("/v1/embeddings", Json("""{"model":"mock","input":"same text","encoding_format":"base64"}"""))).Content.ReadFromJsonAsync<JsonObject>())!;

        var expected = floats["data"]![0]!["embedding"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        var decoded = MemoryMarshal.Cast<byte, float>(Convert.FromBase64String(base64["data"]![0]!["embedding"]!.GetValue<string>())).ToArray();
        Assert.Equal(expected, decoded);
    }

    [Fact]
    public async Task Embeddings_OpenAICompatible_PassesTheBodyThroughWithTheUpstreamModel()
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "text-embedding-3-small", inputPrice: 0.02m, outputPrice: 0m, cachedPrice: 0m);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/embeddings", Json($$"""{"model":"{{alias}}","input":["{{marker}}","b"],"dimensions":3}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = env.Upstream.Find(marker)!;
        Assert.Equal(("/v1/embeddings", "text-embedding-3-small", 3), (sent.Path, sent.Json["model"]!.GetValue<string>(), sent.Json["dimensions"]!.GetValue<int>()));
        var body = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.Equal(2, body["data"]!.AsArray().Count);
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((8, false), (row.PromptTokens, row.UsageEstimated));
        Assert.Equal(8 * 0.02m / 1_000_000m, row.CostUsd);
    }

    [Fact]
    public async Task Embeddings_Gemini_UseBatchEmbedContentsAndAreMeteredAsEstimated()
    {
        var alias = await Gateway.AddModelAsync(env.Gemini.BaseUrl, "gemini-embedding-001", protocol: "gemini", inputPrice: 0.15m, outputPrice: 0m, cachedPrice: 0m,
            secret: FakeGemini.ApiKey);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/embeddings", Json($$"""{"model":"{{alias}}","input":["{{marker}}","second"],"dimensions":2}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = env.Gemini.Find(marker)!;
        Assert.Equal("/v1beta/models/gemini-embedding-001:batchEmbedContents", sent.Path);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse($$"""
            {"requests":[{"model":"models/gemini-embedding-001","content":{"parts":[{"text":"{{marker}}"}]},"outputDimensionality":2},
                         {"model":"models/gemini-embedding-001","content":{"parts":[{"text":"second"}]},"outputDimensionality":2}]}
            """), sent.Json), sent.Body);
        var data = (await response.Content.ReadFromJsonAsync<JsonObject>())!["data"]!.AsArray();
        Assert.Equal([0.5f, 1.5f], data[1]!["embedding"]!.AsArray().Select(v => v!.GetValue<float>()));
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.True(row.UsageEstimated);
        Assert.True(row.PromptTokens > 0 && row.CostUsd > 0);
    }

    [Fact]
    public async Task Embeddings_ModelWithoutEmbeddings_Is400()
    {
        var alias = await Gateway.AddModelAsync(env.Anthropic.BaseUrl, "claude-sonnet-4-5", protocol: "anthropic", secret: FakeAnthropic.ApiKey);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/embeddings", Json($$"""{"model":"{{alias}}","input":"x"}"""));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("unsupported_model", (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["code"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("""{"input":"x"}""", "model")]
    [InlineData("""{"model":"mock"}""", "input")]
    [InlineData("""{"model":"mock","input":""}""", "input")]
    [InlineData("""{"model":"mock","input":[]}""", "input")]
    [InlineData("""{"model":"mock","input":[{"a":1}]}""", "input")]
    [InlineData("""{"model":"mock","input":"x","encoding_format":"hex"}""", "encoding_format")]
    [InlineData("""{"model":"mock","input":[1.5,2]}""", "input")]
    [InlineData("""{"model":"mock","input":[[-1]]}""", "input")]
    [InlineData("""{"model":"mock","input":{}}""", "input")]
    [InlineData("""{"model":"mock","input":"x","dimensions":"8"}""", "dimensions")]
    public async Task Embeddings_BadBody_Is400NamingTheField(string body, string param)
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/embeddings", Json(body));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(param, (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["param"]!.GetValue<string>());
        await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
    }
}
