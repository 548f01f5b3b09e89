using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Api;

/// <summary>
/// A key's <c>cache_scope</c> (issue 16.1) across two API instances on one database: who may read the answers a key's requests
/// left in the response cache. Every test tries to get an answer it should not: from another scope, another team, a model the
/// key may not use, a downgrade, an entry older than its TTL, a scope changed on the other instance. The <c>mock</c> model's
/// completion id carries the request id of the call that produced it, so a hit shows whose answer it was.
/// </summary>
public sealed class CacheScopeTests(TestEnvironment env, CacheScopeTests.SecondInstance other) : IClassFixture<CacheScopeTests.SecondInstance>
{
    /// <summary>A second API instance on the run's database, as behind a load balancer.</summary>
    public sealed class SecondInstance : IAsyncLifetime
    {
        public GatewayHost Host { get; private set; } = null!;

        public ValueTask InitializeAsync()
        {
            Host = new GatewayHost(TestEnvironment.Current.Postgres.ConnectionString);
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync() => Host is null ? ValueTask.CompletedTask : Host.DisposeAsync();
    }

    private GatewayHost One => env.Gateway;

    private GatewayHost Two => other.Host;

    /// <summary>The ids of the keys this test issued, by key.</summary>
    private readonly Dictionary<string, Guid> _ids = [];

    private static string Tag() => "team-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>Issues a caching key through instance one's admin API and waits until both instances know it.</summary>
    private async Task<string> KeyAsync(string? scope, string[]? tags = null, int ttl = 300, string[]? allowedModels = null, string? extra = null)
    {
        var body = new JsonObject
        {
            ["name"] = "scope-" + Guid.NewGuid().ToString("N")[..8],
            ["cache_ttl_seconds"] = ttl,
            ["tags"] = tags is null ? null : new JsonArray([.. tags.Select(t => JsonValue.Create(t))]),
            ["allowed_models"] = allowedModels is null ? null : new JsonArray([.. allowedModels.Select(m => JsonValue.Create(m))]),
        };
        if (scope is not null) body["cache_scope"] = scope;
        foreach (var (name, value) in extra is null ? [] : JsonNode.Parse(extra)!.AsObject().ToList()) body[name] = value?.DeepClone();
        var (key, id, created) = await One.CreateKeyFromJsonAsync(body.ToJsonString());
        Assert.Equal(scope ?? "key", created["cache_scope"]!.GetValue<string>());
        _ids[key] = id;
        await Two.WaitForKeyAsync(key);
        return key;
    }

    private static string Ask(string marker, string model = "mock") =>
        $$"""{"model":"{{model}}","temperature":0,"messages":[{"role":"user","content":"{{marker}}"}]}""";

    private static string Marker() => Guid.NewGuid().ToString("N");

    /// <summary>One request's cache header, status, completion id and the id a mock answer made for this very request would have.</summary>
    private sealed record Answer(HttpStatusCode Status, string? Cache, string? CompletionId, string OwnId, string Body);

    private static async Task<Answer> SendAsync(GatewayHost host, string key, string body)
    {
        using var client = host.Client(key);
        using var response = await client.PostAsync("/v1/chat/completions", Json(body));
        var text = await response.Content.ReadAsStringAsync();
        var requestId = response.Headers.TryGetValues("x-gateway-request-id", out var ids) ? Guid.Parse(ids.Single()) : Guid.Empty;
        string? id = null;
        if (response.IsSuccessStatusCode) id = JsonNode.Parse(text)!["id"]!.GetValue<string>();
        return new Answer(response.StatusCode, response.Headers.TryGetValues("x-gateway-cache", out var c) ? c.Single() : null, id,
            "chatcmpl-mock-" + requestId.ToString("N"), text);
    }

    /// <summary>
    /// Asks until the answer comes from the cache and returns it: the entry a miss leaves is stored after the answer left, so
    /// this is how a test knows the entry is there before another key tries for it.
    /// </summary>
    private static async Task<Answer> StoredAsync(GatewayHost host, string key, string body)
    {
        var hit = await Eventually.UntilAsync(() => SendAsync(host, key, body), a => a.Cache == "hit", pause: TimeSpan.FromMilliseconds(50));
        Assert.Equal("hit", hit.Cache);
        return hit;
    }

    /// <summary>What a key asking for someone else's entry must get: the model's own answer, made for its own request.</summary>
    private static void AssertOwnAnswer(Answer answer)
    {
        Assert.Equal((HttpStatusCode.OK, "miss"), (answer.Status, answer.Cache));
        Assert.Equal(answer.OwnId, answer.CompletionId);
    }

    [Fact]
    public async Task GlobalKeys_ShareAnswers_AcrossInstances()
    {
        var (writer, reader) = (await KeyAsync("global"), await KeyAsync("global"));
        var ask = Ask(Marker());

        var first = await SendAsync(One, writer, ask);
        var stored = await StoredAsync(One, writer, ask);
        var there = await SendAsync(Two, reader, ask);

        Assert.Equal("miss", first.Cache);
        Assert.Equal((HttpStatusCode.OK, "hit"), (there.Status, there.Cache));
        Assert.Equal(stored.CompletionId, there.CompletionId); // the writer's answer, made for the writer's request
        Assert.NotEqual(there.OwnId, there.CompletionId);
        Assert.Equal(stored.Body, there.Body);
    }

    [Fact]
    public async Task GlobalAndKeyScopedKeys_NeverReadEachOthersEntries_InEitherDirection()
    {
        var (global, keyScoped, defaulted) = (await KeyAsync("global"), await KeyAsync("key"), await KeyAsync(null));
        var (globalAsked, keyAsked) = (Ask(Marker()), Ask(Marker()));
        await SendAsync(One, global, globalAsked);
        await StoredAsync(One, global, globalAsked);
        await SendAsync(One, keyScoped, keyAsked);
        await StoredAsync(One, keyScoped, keyAsked);

        // A key-scoped key (set so, or by default) asking what a global key asked; a global key asking what a key-scoped one asked.
        AssertOwnAnswer(await SendAsync(Two, keyScoped, globalAsked));
        AssertOwnAnswer(await SendAsync(Two, defaulted, globalAsked));
        AssertOwnAnswer(await SendAsync(Two, global, keyAsked));
    }

    [Fact]
    public async Task TagScopedKeys_ShareOnlyWithExactlyTheSameTagSet()
    {
        var (a, b, c) = (Tag(), Tag(), Tag());
        var writer = await KeyAsync("tags", [a, b]);
        var ask = Ask(Marker());
        await SendAsync(One, writer, ask);
        var stored = await StoredAsync(One, writer, ask);

        var sameTeam = await SendAsync(Two, await KeyAsync("tags", [b, a]), ask); // the same set, listed in another order
        Assert.Equal(("hit", stored.CompletionId), (sameTeam.Cache, sameTeam.CompletionId));
        // One tag in common is not a team: neither a part of the set, nor more, nor a partial overlap; nor the same tags
        // under another scope.
        AssertOwnAnswer(await SendAsync(Two, await KeyAsync("tags", [a]), ask));
        AssertOwnAnswer(await SendAsync(Two, await KeyAsync("tags", [a, b, c]), ask));
        AssertOwnAnswer(await SendAsync(Two, await KeyAsync("tags", [a, c]), ask));
        AssertOwnAnswer(await SendAsync(Two, await KeyAsync("key", [a, b]), ask));
        AssertOwnAnswer(await SendAsync(Two, await KeyAsync("global", [a, b]), ask));
    }

    [Fact]
    public async Task ScopeChangedThroughOneInstance_AppliesOnTheOther()
    {
        var writer = await KeyAsync("global");
        var changing = await KeyAsync("key");
        var changingId = _ids[changing];
        var ask = Ask(Marker());
        await SendAsync(One, writer, ask);
        var shared = (await StoredAsync(One, writer, ask)).CompletionId;
        AssertOwnAnswer(await SendAsync(Two, changing, ask)); // still its own scope: this also leaves an entry of its own

        using var admin = One.Admin();
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsync($"/admin/keys/{changingId}", Json("""{"cache_scope":"global"}"""))).StatusCode);
        var joined = await Eventually.UntilAsync(() => SendAsync(Two, changing, ask), a => a.CompletionId == shared);
        Assert.Equal(("hit", shared), (joined.Cache, joined.CompletionId));

        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsync($"/admin/keys/{changingId}", Json("""{"cache_scope":"key"}"""))).StatusCode);
        var left = await Eventually.UntilAsync(() => SendAsync(Two, changing, ask), a => a.CompletionId != shared);
        Assert.NotEqual(shared, left.CompletionId);
        // GET /admin/keys shows the setting as it now is.
        Assert.Contains((await admin.GetFromJsonAsync<JsonArray>("/admin/keys"))!, k => k!["id"]!.GetValue<Guid>() == changingId
            && k["cache_scope"]!.GetValue<string>() == "key");
    }

    [Fact]
    public async Task SharedEntryAnsweredByAFallback_IsNotServedToAKeyNotAllowedThatFallback()
    {
        // The asked model always answers 429, so every answer comes from its fallback, mock.
        var limited = await One.AddModelAsync(env.Upstream.BaseUrl, "status-429", fallbacks: ["mock"], everyHost: true);
        await GatewayHost.WaitUntilAsync(() => Two.Services.GetRequiredService<Gateway.Core.Catalog.ModelCatalog>().Find(limited) is not null);
        var writer = await KeyAsync("global");
        var ask = Ask(Marker(), limited);
        await SendAsync(One, writer, ask);
        var stored = await StoredAsync(One, writer, ask);

        var mayUseFallback = await SendAsync(Two, await KeyAsync("global", allowedModels: [limited, "mock"]), ask);
        var askedModelOnly = await SendAsync(Two, await KeyAsync("global", allowedModels: [limited]), ask);

        Assert.Equal(("hit", stored.CompletionId), (mayUseFallback.Cache, mayUseFallback.CompletionId)); // the entry is there, and shared
        Assert.NotEqual("hit", askedModelOnly.Cache);
        Assert.Equal(HttpStatusCode.TooManyRequests, askedModelOnly.Status); // what the one model it may use says
        Assert.DoesNotContain(stored.CompletionId!, askedModelOnly.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DowngradedAnswer_IsNeverStoredAsTheAskedModelsAnswer()
    {
        var overBudget = await KeyAsync("global", extra: """{"daily_budget_usd":0,"downgrade_model":"mock-mini"}""");
        var (control, reader) = (await KeyAsync("global"), await KeyAsync("global"));
        var ask = Ask(Marker());

        var downgraded = await SendAsync(One, overBudget, ask);
        // Had the downgraded answer been stored (in the background, after it left), it would be by the time a later one is.
        var later = Ask(Marker());
        await SendAsync(One, control, later);
        await StoredAsync(One, control, later);
        var asked = await SendAsync(Two, reader, ask);

        Assert.Contains("mock-mini", downgraded.Body, StringComparison.Ordinal);
        AssertOwnAnswer(asked);
        Assert.Equal("mock-1", JsonNode.Parse(asked.Body)!["model"]!.GetValue<string>());
    }

    [Fact]
    public async Task SharedEntryOlderThanTheReadersTtl_IsAMissForThatReader()
    {
        var (longLived, shortLived) = (await KeyAsync("global", ttl: 300), await KeyAsync("global", ttl: 1));
        var ask = Ask(Marker());
        await SendAsync(One, longLived, ask);
        var stored = await StoredAsync(One, longLived, ask);

        // The entry lives 300 s for the key that wrote it; the reader accepts answers up to 1 s old, so it soon stops getting it.
        var stale = await Eventually.UntilAsync(() => SendAsync(Two, shortLived, ask), a => a.CompletionId != stored.CompletionId,
            pause: TimeSpan.FromMilliseconds(200));

        AssertOwnAnswer(stale);
    }

    [Theory]
    [InlineData("""{"cache_scope":"team"}""", "'cache_scope' must be key, tags or global.")]
    [InlineData("""{"cache_scope":"GLOBAL"}""", "'cache_scope' must be key, tags or global.")]
    [InlineData("""{"cache_scope":""}""", "'cache_scope' must be key, tags or global.")]
    [InlineData("""{"cache_scope":5}""", "'cache_scope' has the wrong type")]
    [InlineData("""{"cache_scope":["global"]}""", "'cache_scope' has the wrong type")]
    [InlineData("""{"cache_scope":"tags"}""", "'cache_scope' tags shares cached answers with the keys that have exactly this key's tags")]
    [InlineData("""{"cache_scope":"tags","tags":[]}""", "'cache_scope' tags shares cached answers with the keys that have exactly this key's tags")]
    public async Task AdminApi_BadCacheScope_Is400NamingTheField(string fields, string message)
    {
        using var admin = One.Admin();
        var body = JsonNode.Parse(fields)!.AsObject();
        body["name"] = "bad-scope";

        var response = await admin.PostAsJsonAsync("/admin/keys", body);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!;
        Assert.Equal(("cache_scope", "invalid_value"), (error["param"]!.GetValue<string>(), error["code"]!.GetValue<string>()));
        Assert.StartsWith(message, error["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AdminApi_CacheScope_IsShownPatchedAndKeptConsistentWithTags()
    {
        using var admin = One.Admin();
        var created = (await (await admin.PostAsJsonAsync("/admin/keys", new JsonObject
        {
            ["name"] = "team-cache", ["tags"] = new JsonArray(Tag()), ["cache_scope"] = "tags", ["cache_ttl_seconds"] = 60,
        })).Content.ReadFromJsonAsync<JsonObject>())!;
        var id = created["id"]!.GetValue<Guid>();
        Assert.Equal("tags", created["cache_scope"]!.GetValue<string>());
        Assert.Equal("tags", (await admin.GetFromJsonAsync<JsonObject>($"/admin/keys/{id}"))!["cache_scope"]!.GetValue<string>());

        // Taking the tags away from a 'tags' key would make it share with every tagless one: refused, and nothing changes.
        var untagged = await admin.PatchAsync($"/admin/keys/{id}", Json("""{"tags":[]}"""));
        Assert.Equal(HttpStatusCode.BadRequest, untagged.StatusCode);
        Assert.Equal("cache_scope", (await untagged.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["param"]!.GetValue<string>());
        Assert.Single((await admin.GetFromJsonAsync<JsonObject>($"/admin/keys/{id}"))!["tags"]!.AsArray());

        var camel = await admin.PatchAsync($"/admin/keys/{id}", Json("""{"cacheScope":"global"}"""));
        Assert.Equal("global", (await camel.Content.ReadFromJsonAsync<JsonObject>())!["cache_scope"]!.GetValue<string>());
        var cleared = await admin.PatchAsync($"/admin/keys/{id}", Json("""{"cache_scope":null}"""));
        Assert.Equal("key", (await cleared.Content.ReadFromJsonAsync<JsonObject>())!["cache_scope"]!.GetValue<string>()); // null: the default
        Assert.Contains((await admin.GetFromJsonAsync<JsonArray>("/admin/keys"))!, k => k!["id"]!.GetValue<Guid>() == id
            && k["cache_scope"]!.GetValue<string>() == "key");
    }
}
