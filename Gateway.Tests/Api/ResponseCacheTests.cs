using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Dapper;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Gateway.Tests.Api;

public sealed class ResponseCacheTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    private async Task<string> CachingKeyAsync(int ttl)
    {
        var created = await Gateway.CreateKeyFromJsonAsync($$"""{"name":"cached","cache_ttl_seconds":{{ttl}}}""");
        Assert.Equal(ttl, created.Body["cache_ttl_seconds"]!.GetValue<int>());
        return created.Key;
    }

    private static string? Cache(HttpResponseMessage r) => r.Headers.TryGetValues("x-gateway-cache", out var v) ? v.Single() : null;

    /// <summary>Repeats a request until it is answered from the cache (the miss is stored after its answer left).</summary>
    /// <summary>
    /// Waits until the answer from <paramref name="alias"/>'s (unique) provider is in the cache table: it is stored in the
    /// background after the answer left, and a repeat sent before that would reach the upstream a second time.
    /// </summary>
    private async Task StoredAsync(string alias)
    {
        var provider = alias.Split('/')[0];
        await Eventually.TrueAsync(async () =>
        {
            await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
            return await db.ExecuteScalarAsync<long>("SELECT count(*) FROM response_cache WHERE provider = @provider", new { provider }) > 0;
        }, what: $"a cached answer from {provider}");
    }

    private static Task<HttpResponseMessage> UntilHitAsync(HttpClient client, string body) =>
        Eventually.UntilAsync(() => client.PostAsync("/v1/chat/completions", Json(body)), r => Cache(r) == "hit", pause: TimeSpan.FromMilliseconds(50));

    [Fact]
    public async Task CachedAnswer_IsNeverServedToAnotherKey_OnAnyInstance()
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", everyHost: true);
        var (tenantA, tenantB, tenantC) = (await CachingKeyAsync(300), await CachingKeyAsync(300), await CachingKeyAsync(300));
        await using var second = new GatewayHost(env.Postgres.ConnectionString);
        await GatewayHost.WaitUntilAsync(() => second.Services.GetRequiredService<Gateway.Core.Catalog.ModelCatalog>().Find(alias) is not null
            && second.Services.GetRequiredService<Gateway.Core.Keys.KeyCache>().Authenticate(tenantB).Key is not null
            && second.Services.GetRequiredService<Gateway.Core.Keys.KeyCache>().Authenticate(tenantA).Key is not null);
        var marker = Guid.NewGuid().ToString("N");
        var body = $$"""{"model":"{{alias}}","temperature":0,"messages":[{"role":"user","content":"{{marker}}"}]}""";
        using var a = Gateway.Client(tenantA);
        using var bThere = second.Client(tenantB);
        using var cHere = Gateway.Client(tenantC);
        using var aThere = second.Client(tenantA);

        Assert.Equal("miss", Cache(await a.PostAsync("/v1/chat/completions", Json(body))));
        await StoredAsync(alias);
        var otherKeyThere = await bThere.PostAsync("/v1/chat/completions", Json(body));
        var otherKeyHere = await cHere.PostAsync("/v1/chat/completions", Json(body));
        var sameKeyThere = await UntilHitAsync(aThere, body); // the entry is shared between instances, for its own key

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (otherKeyThere.StatusCode, otherKeyHere.StatusCode));
        Assert.Equal(("miss", "miss", "hit"), (Cache(otherKeyThere), Cache(otherKeyHere), Cache(sameKeyThere)));
        Assert.Equal(3, env.Upstream.Requests.Count(r => r.Body.Contains(marker, StringComparison.Ordinal))); // A's, B's and C's first
    }

    [Fact]
    public async Task DeterministicRequest_IsAnsweredFromTheCacheTheSecondTime_AtNoCost()
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var key = await CachingKeyAsync(300);
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");
        var body = $$"""{"model":"{{alias}}","temperature":0,"messages":[{"role":"user","content":"{{marker}}"}]}""";

        var first = await client.PostAsync("/v1/chat/completions", Json(body));
        await StoredAsync(alias);
        var second = await client.PostAsync("/v1/chat/completions", Json(body));

        Assert.Equal(("miss", "hit"), (Cache(first), Cache(second)));
        Assert.Equal(await first.Content.ReadAsStringAsync(), await second.Content.ReadAsStringAsync());
        Assert.Single(env.Upstream.Requests, r => r.Body.Contains(marker, StringComparison.Ordinal));
        var requestId = Guid.Parse(second.Headers.GetValues("x-gateway-request-id").Single());
        var row = await env.WaitForUsageAsync(requestId);
        Assert.Equal((0m, FakeOpenAI.PromptTokens), (row.CostUsd, row.PromptTokens));
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        Assert.True(await db.ExecuteScalarAsync<bool>("SELECT cache_hit FROM usage_events WHERE request_id = @requestId", new { requestId }));
    }

    [Theory]
    [InlineData("""{"temperature":0.7}""")]
    [InlineData("""{}""")]
    [InlineData("""{"temperature":0,"tools":[{"type":"function","function":{"name":"send_email","parameters":{"type":"object"}}}]}""")]
    [InlineData("""{"temperature":0,"n":2}""")]
    public async Task NonDeterministicRequests_AreNeverCached(string extra)
    {
        var key = await CachingKeyAsync(300);
        using var client = Gateway.Client(key);
        var body = JsonNode.Parse(extra)!.AsObject();
        body["model"] = "mock";
        body["messages"] = JsonNode.Parse("""[{"role":"user","content":"same question"}]""");

        var first = await client.PostAsync("/v1/chat/completions", Json(body.ToJsonString()));
        // Had the first answer been stored, it would be by the time a later deterministic one is: wait for that one's hit.
        var control = $$"""{"model":"mock","temperature":0,"messages":[{"role":"user","content":"{{Guid.NewGuid():N}}"}]}""";
        await client.PostAsync("/v1/chat/completions", Json(control));
        Assert.Equal("hit", Cache(await UntilHitAsync(client, control)));
        var second = await client.PostAsync("/v1/chat/completions", Json(body.ToJsonString()));

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (first.StatusCode, second.StatusCode));
        Assert.Null(Cache(second));
    }

    [Fact]
    public async Task KeysWithoutCaching_AndExpiredEntries_AreMisses()
    {
        var (plain, _) = await Gateway.CreateKeyAsync();
        using var plainClient = Gateway.Client(plain);
        var body = """{"model":"mock","temperature":0,"messages":[{"role":"user","content":"cache me not"}]}""";
        await plainClient.PostAsync("/v1/chat/completions", Json(body));
        Assert.Null(Cache(await plainClient.PostAsync("/v1/chat/completions", Json(body))));

        var shortLived = await CachingKeyAsync(1);
        using var client = Gateway.Client(shortLived);
        var expiring = $$"""{"model":"mock","temperature":0,"messages":[{"role":"user","content":"{{Guid.NewGuid():N}}"}]}""";
        await client.PostAsync("/v1/chat/completions", Json(expiring));
        Assert.Equal("hit", Cache(await UntilHitAsync(client, expiring)));
        // The entry lives 1 s: hits until then, a miss after (an entry that never expires keeps hitting past the bound).
        var expired = await Eventually.UntilAsync(() => client.PostAsync("/v1/chat/completions", Json(expiring)), r => Cache(r) != "hit",
            pause: TimeSpan.FromMilliseconds(200));
        Assert.Equal("miss", Cache(expired));
    }

    /// <summary>The content, finish reason and usage a client reads from a streamed answer.</summary>
    private static (string Text, string? Finish, int? PromptTokens, string[] Events) ReadStream(string raw)
    {
        var events = ChatCompletionsTests.SseEvents(raw);
        var chunks = events.Where(e => e != "[DONE]").Select(e => JsonNode.Parse(e)!.AsObject()).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c["object"]!.GetValue<string>()));
        var text = string.Concat(chunks.Select(c => c["choices"]!.AsArray().FirstOrDefault()?["delta"]?["content"]?.GetValue<string>()));
        var finish = chunks.Select(c => c["choices"]!.AsArray().FirstOrDefault()?["finish_reason"]?.GetValue<string>()).LastOrDefault(f => f is not null);
        var usage = chunks.LastOrDefault(c => c["usage"] is JsonObject)?["usage"]?["prompt_tokens"]?.GetValue<int>();
        return (text, finish, usage, events);
    }

    [Fact]
    public async Task StreamedAnswer_IsCached_AndReplayedAsAStream_OrAsAPlainAnswer()
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var key = await CachingKeyAsync(300);
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");
        var streamed = $$"""{"model":"{{alias}}","temperature":0,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"{{marker}}"}]}""";

        var first = await client.PostAsync("/v1/chat/completions", Json(streamed));
        var upstream = ReadStream(await first.Content.ReadAsStringAsync());
        await StoredAsync(alias);
        var second = await client.PostAsync("/v1/chat/completions", Json(streamed));
        var replayed = ReadStream(await second.Content.ReadAsStringAsync());

        Assert.Equal(("miss", "hit"), (Cache(first), Cache(second)));
        Assert.StartsWith("text/event-stream", second.Content.Headers.ContentType!.ToString(), StringComparison.Ordinal);
        Assert.Equal((upstream.Text, upstream.Finish, (int?)FakeOpenAI.PromptTokens), (replayed.Text, replayed.Finish, replayed.PromptTokens));
        Assert.NotEmpty(replayed.Text);
        Assert.Equal("[DONE]", replayed.Events[^1]);
        // The same question without streaming shares the entry, as a chat.completion.
        var plain = await client.PostAsync("/v1/chat/completions", Json(streamed.Replace("\"stream\":true,", "").Replace("\"stream_options\":{\"include_usage\":true},", "")));
        Assert.Equal("hit", Cache(plain));
        var answer = (await plain.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.Equal(upstream.Text, answer["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Single(env.Upstream.Requests, r => r.Body.Contains(marker, StringComparison.Ordinal));
        var row = await env.WaitForUsageAsync(Guid.Parse(second.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((0m, true), (row.CostUsd, row.Streamed));
    }

    [Fact]
    public async Task CachedAnswer_ToAStreamingClientThatDidNotAskForUsage_HasNoUsageChunk()
    {
        var key = await CachingKeyAsync(300);
        using var client = Gateway.Client(key);
        var plain = $$"""{"model":"mock","temperature":0,"messages":[{"role":"user","content":"{{Guid.NewGuid():N}}"}]}""";
        await client.PostAsync("/v1/chat/completions", Json(plain));
        await UntilHitAsync(client, plain);

        var hit = await client.PostAsync("/v1/chat/completions", Json(plain.Replace("\"temperature\":0,", "\"temperature\":0,\"stream\":true,")));

        Assert.Equal("hit", Cache(hit));
        var read = ReadStream(await hit.Content.ReadAsStringAsync());
        Assert.Null(read.PromptTokens);
        Assert.Equal("stop", read.Finish);
        Assert.DoesNotContain(read.Events, e => e.Contains("\"usage\"", StringComparison.Ordinal));
    }
}
