using System.ClientModel;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;
using OpenAI;
using OpenAI.Chat;

namespace Gateway.Tests.Api;

/// <summary>
/// A stream that breaks mid-answer continues on the next candidate in the form that candidate's protocol continues natively
/// (Anthropic's prefilled assistant turn, DeepSeek's and Mistral's <c>"prefix": true</c>), falls back to an instruction where it
/// cannot, and never shows the client the partial answer twice. The client is the official OpenAI SDK.
/// </summary>
public sealed class StreamContinuationTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    /// <summary>A primary that streams "Hello from" (or "Hello from ") and drops, and the given fallback.</summary>
    private async Task<string> PrimaryAsync(string fallback, string primaryModel = "drop-mid-stream") =>
        await Gateway.AddModelAsync(env.Upstream.BaseUrl, primaryModel, fallbacks: [fallback]);

    private async Task<string> StreamTextAsync(string model, string marker)
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        var chat = new ChatClient(model, new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(Gateway.BaseAddress, "/v1") });
        var (_, text, _) = await SdkStreams.CollectAsync(chat, [new UserChatMessage(marker)], new ChatCompletionOptions());
        return text;
    }

    private List<JsonObject> AnthropicCalls(string marker) =>
        [.. env.Anthropic.Requests.Where(r => r.Body.Contains(marker, StringComparison.Ordinal)).Select(r => r.Json)];

    private static (string Role, string Text) Last(JsonObject body)
    {
        var last = body["messages"]!.AsArray()[^1]!;
        var content = last["content"]!;
        var text = content is JsonArray blocks ? string.Concat(blocks.Select(b => b!["text"]?.GetValue<string>())) : content.GetValue<string>();
        return (last["role"]!.GetValue<string>(), text);
    }

    [Fact]
    public async Task Anthropic_ContinuesByPrefill_AndTheClientReadsTheAnswerOnce()
    {
        var fallback = await Gateway.AddModelAsync(env.Anthropic.BaseUrl, "claude-haiku-4-5", protocol: "anthropic", secret: FakeAnthropic.ApiKey);
        var primary = await PrimaryAsync(fallback);
        var marker = Guid.NewGuid().ToString("N");

        var text = await StreamTextAsync(primary, marker);

        Assert.Equal("Hello from Claude.", text);
        var call = Assert.Single(AnthropicCalls(marker));
        Assert.Equal(("assistant", "Hello from"), Last(call)); // the partial answer is the prefill: no instruction after it
        Assert.DoesNotContain("Continue exactly", call.ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task PartialAnswerEndingInWhitespace_IsTrimmedForThePrefill_AndNoSpaceIsDoubled()
    {
        var fallback = await Gateway.AddModelAsync(env.Anthropic.BaseUrl, "claude-haiku-4-5", protocol: "anthropic", secret: FakeAnthropic.ApiKey);
        var primary = await PrimaryAsync(fallback, "drop-after-space"); // sends "Hello from " then drops
        var marker = Guid.NewGuid().ToString("N");

        var text = await StreamTextAsync(primary, marker);

        Assert.Equal("Hello from Claude.", text);
        Assert.Equal(("assistant", "Hello from"), Last(Assert.Single(AnthropicCalls(marker)))); // Anthropic refuses a prefill ending in whitespace
    }

    [Fact]
    public async Task PartialAnswerOfOnlyWhitespace_IsContinuedAsIfNothingWasSaid()
    {
        // Anthropic refuses a turn whose text is only whitespace, as a prefill or before an instruction.
        var fallback = await Gateway.AddModelAsync(env.Anthropic.BaseUrl, "claude-haiku-4-5", protocol: "anthropic", secret: FakeAnthropic.ApiKey);
        var primary = await PrimaryAsync(fallback, "drop-after-newlines"); // sends "\n\n" then drops
        var marker = Guid.NewGuid().ToString("N");

        var text = await StreamTextAsync(primary, marker);

        Assert.Equal("\n\nHello from Claude.", text);
        Assert.Equal("user", Last(Assert.Single(AnthropicCalls(marker))).Role); // the question again, nothing of the partial answer
    }

    [Fact]
    public async Task ModelThatRefusesPrefill_IsContinuedWithAnInstruction_AndIsNotAskedToPrefillAgain()
    {
        var fallback = await Gateway.AddModelAsync(env.Anthropic.BaseUrl, "claude-sonnet-4-6", protocol: "anthropic", secret: FakeAnthropic.ApiKey);
        var primary = await PrimaryAsync(fallback);
        var first = Guid.NewGuid().ToString("N");
        var second = Guid.NewGuid().ToString("N");

        var firstText = await StreamTextAsync(primary, first);
        var secondText = await StreamTextAsync(primary, second);

        // The instructed model answers in full ("Hello from Claude."): the part the client already had is not repeated.
        Assert.Equal(("Hello from Claude.", "Hello from Claude."), (firstText, secondText));
        Assert.Equal(["assistant", "user"], AnthropicCalls(first).Select(c => Last(c).Role)); // refused prefill, then the instruction
        Assert.Equal(["user"], AnthropicCalls(second).Select(c => Last(c).Role)); // remembered: straight to the instruction
        Assert.Contains("Continue exactly where your previous message stopped", Last(AnthropicCalls(second)[0]).Text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("deepseek-chat")] // DeepSeek's /beta: the answer is what follows the prefix
    [InlineData("mistral-large-prefix-echo")] // an API that returns the prefix again: not shown twice
    public async Task PrefixCompletionProvider_ContinuesTheMarkedAssistantMessage(string upstreamModel)
    {
        var fallback = await Gateway.AddModelAsync(env.Upstream.BaseUrl, upstreamModel, settings: new JsonObject { ["prefix_completion"] = true });
        var primary = await PrimaryAsync(fallback);
        var marker = Guid.NewGuid().ToString("N");

        var text = await StreamTextAsync(primary, marker);

        Assert.Equal(FakeOpenAI.Answer, text);
        var call = env.Upstream.Requests.Single(r => r.Body.Contains(marker, StringComparison.Ordinal) && r.Json["model"]!.GetValue<string>() == upstreamModel).Json;
        var last = call["messages"]!.AsArray()[^1]!;
        Assert.Equal(("assistant", "Hello from", true), (last["role"]!.GetValue<string>(), last["content"]!.GetValue<string>(), last["prefix"]!.GetValue<bool>()));
    }

    [Fact]
    public async Task OpenAIWithoutPrefixCompletion_GetsTheInstruction_AndItsRestatementIsDropped()
    {
        var fallback = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var primary = await PrimaryAsync(fallback);
        var marker = Guid.NewGuid().ToString("N");

        var text = await StreamTextAsync(primary, marker);

        Assert.Equal(FakeOpenAI.Answer, text); // the fallback restates "Hello from" before going on
        var call = env.Upstream.Requests.Single(r => r.Body.Contains(marker, StringComparison.Ordinal) && r.Json["model"]!.GetValue<string>() == "gpt-4o-mini").Json;
        var messages = call["messages"]!.AsArray();
        Assert.Null(messages[^2]!["prefix"]);
        Assert.Equal(("assistant", "user"), (messages[^2]!["role"]!.GetValue<string>(), messages[^1]!["role"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Stream_ContinuationFailsToo_TheRowStaysOnTheBrokenCandidateAtItsPrices()
    {
        var fallback = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "status-503", inputPrice: 100m, outputPrice: 400m);
        var primary = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "drop-mid-stream", inputPrice: 1m, outputPrice: 1m, fallbacks: [fallback]);
        var (key, _) = await env.Gateway.CreateKeyAsync();
        using var client = env.Gateway.Client(key);
        var response = await client.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"{{primary}}","stream":true,"messages":[{"role":"user","content":"hi"}]}"""), TestContext.Current.CancellationToken);
        await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);

        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((primary.Split('/')[0], "drop-mid-stream"), (row.Provider, row.ServedModel));
        Assert.Equal((1m, 1m), (row.InputPricePerMTok, row.OutputPricePerMTok));
        Assert.Equal((row.PromptTokens + row.CompletionTokens) / 1_000_000m, row.CostUsd);
    }
}

