using System.Text;
using System.Text.Json.Nodes;
using Gateway.Core.Keys;
using Gateway.Core.Pipeline;
using Gateway.Core.Telemetry;
using Gateway.Core.Validation;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Core;

/// <summary>
/// The request pipeline driven without HTTP: a key, a parsed request and the pipeline's result, as any front door would see them;
/// the usage row each run leaves is read from PostgreSQL. The services are the running API host's own (real catalog, real budgets,
/// real upstream calls to the fake over loopback).
/// </summary>
public sealed class ChatPipelineTests(TestEnvironment env)
{
    private IServiceProvider Services => env.Gateway.Services;

    private ChatPipeline Pipeline => Services.GetRequiredService<ChatPipeline>();

    private ParseResult Parse(string json) => Services.GetRequiredService<ChatRequestParser>().Parse(Encoding.UTF8.GetBytes(json));

    private async Task<GatewayKey> KeyAsync(decimal? hardCapUsd = null, string[]? allowedModels = null, int? rpmLimit = null)
    {
        var (secret, _) = await env.Gateway.CreateKeyAsync(hardCapUsd: hardCapUsd, allowedModels: allowedModels, rpmLimit: rpmLimit);
        return Services.GetRequiredService<KeyCache>().Authenticate(secret).Key!;
    }

    /// <summary>Runs one chat request through the pipeline as a front door does: start, run, read the result, dispose.</summary>
    private async Task<(PipelineResult Result, Guid RequestId, List<StreamEvent> Events)> RunAsync(GatewayKey key, ParseResult parsed)
    {
        var events = new List<StreamEvent>();
        await using var run = Pipeline.Start(key, GatewayTelemetry.Chat, FrontDoorNames.OpenAIChat);
        var result = await Pipeline.ChatAsync(run, parsed, _ => null, TestContext.Current.CancellationToken);
        if (result.Stream is { } stream)
            await foreach (var item in stream) events.Add(item);
        return (result, run.RequestId, events);
    }

    [Fact]
    public async Task Pipeline_PlainRequest_AnswersWithTheFactsOfItsRouteAndLeavesOneRow()
    {
        var key = await KeyAsync();
        var (result, requestId, _) = await RunAsync(key, Parse("""{"model":"mock","messages":[{"role":"user","content":"Hello pipeline"}]}"""));

        Assert.Null(result.Error);
        Assert.Null(result.Stream);
        var answer = JsonNode.Parse(result.Body.Span)!;
        Assert.Equal("chat.completion", answer["object"]!.GetValue<string>());
        Assert.Equal(("mock", "mock-1", 1, false), (result.Facts.Provider, result.Facts.Model, result.Facts.Attempts, result.Facts.Fallback));
        var row = await env.WaitForUsageAsync(requestId);
        Assert.Equal((200, "mock", key.Id, FrontDoorNames.OpenAIChat), (row.Status, row.AskedModel, row.KeyId, row.FrontDoor));
        Assert.Single(await env.UsageRowsAsync(requestId));
    }

    [Fact]
    public async Task Pipeline_StreamedRequest_YieldsCanonicalChunksAndMetersTheStream()
    {
        var key = await KeyAsync();
        var (result, requestId, events) = await RunAsync(key,
            Parse("""{"model":"mock","stream":true,"messages":[{"role":"user","content":"Tell me a story"}]}"""));

        Assert.Null(result.Error);
        Assert.NotEmpty(events);
        Assert.All(events, e => Assert.Null(e.Error));
        Assert.All(events, e => Assert.Equal("chat.completion.chunk", JsonNode.Parse(e.Chunk.Span)!["object"]!.GetValue<string>()));
        var row = await env.WaitForUsageAsync(requestId);
        Assert.True(row.Streamed);
        Assert.True(row.CompletionTokens > 0);
    }

    [Fact]
    public async Task Pipeline_BodyTheParserRefused_FailsAt400WithoutRoutingAndLeavesItsRow()
    {
        var key = await KeyAsync();
        var (result, requestId, _) = await RunAsync(key, Parse("""{"model":"mock","messages":"not a list"}"""));

        Assert.Equal(400, result.Error!.Status);
        Assert.Null(result.Facts.Provider);
        Assert.Null(result.Facts.Attempts);
        Assert.Equal(400, (await env.WaitForUsageAsync(requestId)).Status);
    }

    [Fact]
    public async Task Pipeline_ModelTheKeyMayNotUse_Fails403BeforeAnyProviderIsCalled()
    {
        var key = await KeyAsync(allowedModels: ["some-other-model"]);
        var (result, requestId, _) = await RunAsync(key, Parse("""{"model":"mock","messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(403, result.Error!.Status);
        Assert.Null(result.Facts.Attempts);
        var row = await env.WaitForUsageAsync(requestId);
        Assert.Equal((403, (string?)null), (row.Status, row.Provider));
    }

    [Fact]
    public async Task Pipeline_SecondRequestOverTheKeysRpm_IsRefused429WithItsLimitsAsFacts()
    {
        var key = await KeyAsync(rpmLimit: 1);
        var (first, _, _) = await RunAsync(key, Parse("""{"model":"mock","messages":[{"role":"user","content":"one"}]}"""));
        var (second, requestId, _) = await RunAsync(key, Parse("""{"model":"mock","messages":[{"role":"user","content":"two"}]}"""));

        Assert.Null(first.Error);
        Assert.Equal(429, second.Error!.Status);
        Assert.Equal((1, 0), (second.Facts.Limits!.RequestLimit, second.Facts.Limits.RequestsRemaining));
        Assert.Equal(429, (await env.WaitForUsageAsync(requestId)).Status);
    }

    [Fact]
    public async Task Pipeline_CappedKeyWithoutAnOutputLimit_SendsTheReservedLimitUpstreamAndLeavesTheCallersRequestAlone()
    {
        var alias = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", inputPrice: 0.15m, outputPrice: 0.6m);
        var key = await KeyAsync(hardCapUsd: 5m);
        var marker = "pipeline-" + Guid.NewGuid().ToString("N");
        var parsed = Parse($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"{{marker}}"}]}""");
        var (result, _, _) = await RunAsync(key, parsed);

        Assert.Null(result.Error);
        var sent = env.Upstream.Find(marker)!.Json;
        Assert.Equal("gpt-4o-mini", sent["model"]!.GetValue<string>());
        Assert.NotNull(sent["max_tokens"]);
        // The pipeline and the providers work on copies: the front door's request is as the client sent it.
        Assert.Equal(alias, parsed.Value!.Model);
        Assert.Null(parsed.Value.MaxTokens);
        Assert.Null(parsed.Value.StreamOptions);
    }
}
