using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;
using OpenAI;
using OpenAI.Chat;

namespace Gateway.Tests.Api;

public sealed class ChatCompletionsTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    [Fact]
    public async Task ChatCompletion_MockModel_AnswersWithUsageAndRecordsItsCost()
    {
        var (key, keyId) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions",
            Json("""{"model":"mock","user":"alice","messages":[{"role":"user","content":"What is the capital of France?"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("mock", response.Headers.GetValues("x-gateway-provider").Single());
        Assert.Equal("mock-1", response.Headers.GetValues("x-gateway-model").Single());
        var requestId = Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single());
        var body = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.Equal("chat.completion", body["object"]!.GetValue<string>());
        Assert.Contains("capital of France", body["choices"]![0]!["message"]!["content"]!.GetValue<string>(), StringComparison.Ordinal);
        var usage = body["usage"]!;
        var prompt = usage["prompt_tokens"]!.GetValue<int>();
        var completion = usage["completion_tokens"]!.GetValue<int>();
        Assert.True(prompt > 5 && completion > 5);

        var row = await env.WaitForUsageAsync(requestId);
        Assert.Equal(keyId, row.KeyId);
        Assert.Equal("alice", row.EndUser);
        Assert.Equal(("mock", "mock-1", "mock"), (row.AskedModel, row.ServedModel, row.Provider));
        Assert.Equal((prompt, completion, 200, false, false), (row.PromptTokens, row.CompletionTokens, row.Status, row.Streamed, row.UsageEstimated));
        // mock prices: $1 input, $2 output per million tokens
        Assert.Equal((prompt * 1m + completion * 2m) / 1_000_000m, row.CostUsd);
        Assert.Equal((1m, 2m, 0.5m), (row.InputPricePerMTok, row.OutputPricePerMTok, row.CachedInputPricePerMTok));
    }

    /// <param name="assembled">By default a non-streaming request is called streaming and its chunks assembled (for the first-token
    /// deadline); with <c>assemble_streams: false</c> it is one unstreamed call whose answer is passed back byte for byte.</param>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ChatCompletion_OpenAIUpstream_PassesUnknownFieldsAndKeepsEveryFieldOfTheAnswer(bool assembled)
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", settings: assembled ? null : new JsonObject { ["assemble_streams"] = false });
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{alias}}","messages":[{"role":"user","content":"{{marker}}","x_custom":1}],
             "seed":42,"logit_bias":{"50256":-100},"metadata":{"team":"search"},"temperature":0.2}
            """));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        if (!assembled) Assert.Contains("\"system_fingerprint\": \"fp_fake\"", text, StringComparison.Ordinal); // the upstream's bytes, not a re-serialization
        var answer = JsonNode.Parse(text)!;
        Assert.Equal(("chatcmpl-fake0001", "chat.completion", 1_741_569_952L, "gpt-4o-mini-2024-07-18", "fp_fake", "default"),
            (answer["id"]!.GetValue<string>(), answer["object"]!.GetValue<string>(), answer["created"]!.GetValue<long>(), answer["model"]!.GetValue<string>(),
             answer["system_fingerprint"]!.GetValue<string>(), answer["service_tier"]!.GetValue<string>()));
        var choice = answer["choices"]!.AsArray().Single()!;
        Assert.Equal(("assistant", FakeOpenAI.Answer, "stop"), (choice["message"]!["role"]!.GetValue<string>(),
            choice["message"]!["content"]!.GetValue<string>(), choice["finish_reason"]!.GetValue<string>()));
        Assert.True(choice["message"]!.AsObject().ContainsKey("refusal"));
        Assert.Equal(0, answer["usage"]!["completion_tokens_details"]!["reasoning_tokens"]!.GetValue<int>());
        Assert.Equal("gpt-4o-mini-2024-07-18", response.Headers.GetValues("x-gateway-model").Single());

        var sent = env.Upstream.Find(marker)!;
        Assert.Equal("Bearer sk-fake-upstream-secret", sent.Authorization);
        var json = sent.Json;
        Assert.Equal("gpt-4o-mini", json["model"]!.GetValue<string>());
        Assert.Equal(42, json["seed"]!.GetValue<int>());
        Assert.Equal(-100, json["logit_bias"]!["50256"]!.GetValue<int>());
        Assert.Equal("search", json["metadata"]!["team"]!.GetValue<string>());
        Assert.Equal(1, json["messages"]![0]!["x_custom"]!.GetValue<int>());
        Assert.Equal(assembled, json["stream"]?.GetValue<bool>() == true);
        Assert.Equal(assembled, json["stream_options"]?["include_usage"]?.GetValue<bool>() == true);

        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((FakeOpenAI.PromptTokens, FakeOpenAI.CompletionTokens, FakeOpenAI.CachedTokens), (row.PromptTokens, row.CompletionTokens, row.CachedTokens));
        Assert.Equal("gpt-4o-mini-2024-07-18", row.ServedModel);
        // 16 uncached prompt tokens at $2.50, 5 cached at $1.25, 7 completion at $10 (per million)
        Assert.Equal((16 * 2.5m + 5 * 1.25m + 7 * 10m) / 1_000_000m, row.CostUsd);
    }

    [Fact]
    public async Task ChatStream_ClientDidNotAskForUsage_GatewayAsksUpstreamAndHidesUsageChunk()
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"{{alias}}","stream":true,"messages":[{"role":"user","content":"{{marker}}"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var events = SseEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.All(chunks, c => Assert.NotEmpty(c["choices"]!.AsArray()));
        Assert.Equal("Hello from the fake upstream.", string.Concat(chunks.Select(c => c["choices"]![0]!["delta"]!["content"]?.GetValue<string>())));

        Assert.True(env.Upstream.Find(marker)!.Json["stream_options"]!["include_usage"]!.GetValue<bool>());
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((FakeOpenAI.PromptTokens, FakeOpenAI.CompletionTokens, true, false), (row.PromptTokens, row.CompletionTokens, row.Streamed, row.UsageEstimated));
        Assert.NotNull(row.TtftMs);
        Assert.True(row.CostUsd > 0);
    }

    [Fact]
    public async Task ChatStream_ClientAskedForUsage_GetsTheUsageChunkBeforeDone()
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"{{alias}}","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"""));

        var events = SseEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        var usageChunk = JsonNode.Parse(events[^2])!;
        Assert.Empty(usageChunk["choices"]!.AsArray());
        Assert.Equal(FakeOpenAI.PromptTokens, usageChunk["usage"]!["prompt_tokens"]!.GetValue<int>());
    }

    /// <summary>
    /// The chunks held back until the first token, then each one after it, reach the client as the upstream sent them: chunks
    /// of different lengths (the role chunk, words, the finish chunk, the longer usage chunk) pass through one reused buffer once
    /// the first token is out, and none may carry another's bytes.
    /// </summary>
    [Fact]
    public async Task ChatStream_OpenAIUpstream_RelaysEveryChunkAsTheUpstreamSentIt()
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        const string question = """ "messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true} """;

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}",{{question}}}"""));
        using var direct = new HttpClient();
        direct.DefaultRequestHeaders.Authorization = new("Bearer", "sk-fake-upstream-secret");
        var upstream = await direct.PostAsync(env.Upstream.BaseUrl + "/chat/completions", Json($$"""{"model":"gpt-4o-mini",{{question}}}"""));

        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var sent = SseEvents(await upstream.Content.ReadAsStringAsync());
        var relayed = SseEvents(await response.Content.ReadAsStringAsync());
        Assert.True(sent.Length >= 5 && sent.Select(e => e.Length).Distinct().Count() >= 3, "the upstream's chunks differ in length");
        Assert.Equal(sent, relayed);
    }

    [Fact]
    public async Task ChatStream_MockModel_FramesEveryChunkAsOpenAIDoes()
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions",
            Json("""{"model":"mock","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Tell me a story"}]}"""));

        var raw = await response.Content.ReadAsStringAsync();
        Assert.StartsWith("data: {", raw, StringComparison.Ordinal);
        Assert.EndsWith("\n\ndata: [DONE]\n\n", raw, StringComparison.Ordinal);
        var events = SseEvents(raw);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.Single(chunks.Select(c => c["id"]!.GetValue<string>()).Distinct());
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c["object"]!.GetValue<string>()));
        Assert.Equal("assistant", chunks[0]["choices"]![0]!["delta"]!["role"]!.GetValue<string>());
        Assert.Equal("stop", chunks[^2]["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.True(chunks[^1]["usage"]!["completion_tokens"]!.GetValue<int>() > 0);
    }

    [Fact]
    public async Task Models_ListsOnlyTheModelsTheKeyMayUse()
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var (all, _) = await Gateway.CreateKeyAsync();
        var (limited, _) = await Gateway.CreateKeyAsync(allowedModels: ["mock"]);

        using var allClient = Gateway.Client(all);
        var everything = (await allClient.GetFromJsonAsync<JsonObject>("/v1/models"))!;
        Assert.Equal("list", everything["object"]!.GetValue<string>());
        var ids = everything["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()).ToList();
        Assert.Contains("mock", ids);
        Assert.Contains(alias, ids);

        using var limitedClient = Gateway.Client(limited);
        var some = (await limitedClient.GetFromJsonAsync<JsonObject>("/v1/models"))!;
        Assert.Equal(["mock"], some["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()));
    }

    [Fact]
    public async Task OpenAISdk_NonStreamingAndStreaming_WorkAgainstTheGateway()
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        var chat = new ChatClient("mock", new ApiKeyCredential(key),
            new OpenAIClientOptions { Endpoint = new Uri(Gateway.BaseAddress, "/v1") });

        ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage("Say hello")]);
        Assert.Contains("Say hello", completion.Content[0].Text, StringComparison.Ordinal);
        Assert.True(completion.Usage.OutputTokenCount > 0);

        var streamed = new StringBuilder();
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("Say hello")]))
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
        Assert.Equal(completion.Content[0].Text, streamed.ToString());
    }

    /// <summary>The data of each SSE event, in order.</summary>
    internal static string[] SseEvents(string raw) =>
        raw.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => Assert.Single(e.Split('\n'), l => l.StartsWith("data: ", StringComparison.Ordinal))["data: ".Length..])
            .ToArray();
}
