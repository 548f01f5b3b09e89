using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

/// <summary>Routing rules: matched in priority order; each test scopes its rules to a virtual alias of its own.</summary>
public sealed class RoutingTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 13)];

    private async Task PutRuleAsync(string name, string json)
    {
        using var admin = Gateway.Admin();
        var response = await admin.PutAsync($"/admin/routes/{name}", Json(json));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>Sends until the rule change reached this instance (NOTIFY); returns the last answer either way.</summary>
    private static Task<HttpResponseMessage> SendAsync(HttpClient client, string body, Func<HttpResponseMessage, bool> done) =>
        Eventually.UntilAsync(() => client.PostAsync("/v1/chat/completions", Json(body)), done);

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.Single() : null;

    [Fact]
    public async Task KeywordRule_SendsAVirtualAliasToTheCheapModel_AndTheRecordNamesTheRule()
    {
        var cheap = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "mistral-small-latest");
        var virtualAlias = Unique("auto");
        var rule = Unique("classify");
        await PutRuleAsync(rule, $$"""
            {"priority":10,"match":{"models":["{{virtualAlias}}"],"prompt_keywords":["classify","sentiment"]},"targets":[{"model":"{{cheap}}"}]}
            """);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await SendAsync(client, $$"""{"model":"{{virtualAlias}}","messages":[{"role":"user","content":"Please CLASSIFY this review"}]}""",
            r => r.StatusCode == HttpStatusCode.OK);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal((rule, "mistral-small-latest-2024-07-18"), (Header(response, "x-gateway-rule"), Header(response, "x-gateway-model")));
        var row = await env.WaitForUsageAsync(Guid.Parse(Header(response, "x-gateway-request-id")!));
        Assert.Equal(virtualAlias, row.AskedModel);
        var other = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{virtualAlias}}","messages":[{"role":"user","content":"Write a poem"}]}"""));
        Assert.Equal(HttpStatusCode.NotFound, other.StatusCode); // no rule matched and no model has that alias
    }

    [Fact]
    public async Task LongContextRule_SendsBigPromptsElsewhere()
    {
        var normal = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var longContext = await Gateway.AddModelAsync(env.Gemini.BaseUrl, "gemini-2.5-flash", protocol: "gemini", secret: FakeGemini.ApiKey);
        await PutRuleAsync(Unique("long"), $$"""
            {"priority":5,"match":{"models":["{{normal}}"],"min_prompt_tokens":200},"targets":[{"model":"{{longContext}}"}]}
            """);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var longPrompt = string.Join(' ', Enumerable.Repeat("context", 400));

        var big = await SendAsync(client, $$"""{"model":"{{normal}}","messages":[{"role":"user","content":"{{longPrompt}}"}]}""",
            r => Header(r, "x-gateway-provider") == longContext.Split('/')[0]);
        var small = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{normal}}","messages":[{"role":"user","content":"short"}]}"""));

        Assert.Equal(longContext.Split('/')[0], Header(big, "x-gateway-provider"));
        Assert.Equal(normal.Split('/')[0], Header(small, "x-gateway-provider"));
        Assert.Null(Header(small, "x-gateway-rule"));
    }

    [Fact]
    public async Task PromptRegexRule_MatchesAtTheEndOfAVeryLongPrompt()
    {
        var virtualAlias = Unique("regex");
        var rule = Unique("tail");
        await PutRuleAsync(rule, $$"""
            {"priority":10,"match":{"models":["{{virtualAlias}}"],"prompt_regex":"needle\\W+in\\W+the\\W+haystack"},"targets":[{"model":"mock-mini"}]}
            """);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        // ~100k characters before the match: .NET 10's NonBacktracking engine answers "no match" here when given a timeout.
        var prompt = string.Concat(Enumerable.Repeat("lorem ipsum dolor ", 5555)) + " x needle in the haystack";

        var response = await SendAsync(client, $$"""{"model":"{{virtualAlias}}","messages":[{"role":"user","content":"{{prompt}}"}]}""",
            r => r.StatusCode == HttpStatusCode.OK);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(rule, Header(response, "x-gateway-rule"));
    }

    [Fact]
    public async Task KeyTagHeaderAndToolsConditions_AllMustHold()
    {
        var standard = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var cheap = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "deepseek-chat");
        await PutRuleAsync(Unique("cost"), $$"""
            {"priority":5,"match":{"models":["{{standard}}"],"key_tags":["cost-sensitive"],"headers":{"x-team":"search"},"has_tools":false},
             "targets":[{"model":"{{cheap}}"}]}
            """);
        var (tagged, _, created) = await Gateway.CreateKeyFromJsonAsync("""{"name":"tagged","tags":["cost-sensitive"]}""");
        Assert.Equal(["cost-sensitive"], created["tags"]!.AsArray().Select(t => t!.GetValue<string>()));
        var (untagged, _) = await Gateway.CreateKeyAsync();
        var body = $$"""{"model":"{{standard}}","messages":[{"role":"user","content":"hi"}]}""";

        using var taggedClient = Gateway.Client(tagged);
        taggedClient.DefaultRequestHeaders.Add("x-team", "search");
        var matched = await SendAsync(taggedClient, body, r => Header(r, "x-gateway-model")?.StartsWith("deepseek", StringComparison.Ordinal) == true);
        var withTools = await taggedClient.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{standard}}","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"} }]}
            """));
        using var untaggedClient = Gateway.Client(untagged);
        untaggedClient.DefaultRequestHeaders.Add("x-team", "search");
        var otherKey = await untaggedClient.PostAsync("/v1/chat/completions", Json(body));

        Assert.Equal("deepseek-chat-2024-07-18", Header(matched, "x-gateway-model"));
        Assert.Equal("gpt-4o-mini-2024-07-18", Header(withTools, "x-gateway-model"));
        Assert.Equal("gpt-4o-mini-2024-07-18", Header(otherKey, "x-gateway-model"));
    }

    [Fact]
    public async Task WeightedTargets_SplitTrafficStickyPerEndUser()
    {
        var a = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "model-a");
        var b = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "model-b");
        var virtualAlias = Unique("ab");
        await PutRuleAsync(Unique("split"), $$"""
            {"priority":1,"match":{"models":["{{virtualAlias}}"]},"targets":[{"model":"{{a}}","weight":50},{"model":"{{b}}","weight":50}]}
            """);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        await SendAsync(client, $$"""{"model":"{{virtualAlias}}","user":"warm-up","messages":[{"role":"user","content":"hi"}]}""", r => r.IsSuccessStatusCode);

        var servedBy = new Dictionary<string, HashSet<string>>();
        for (var user = 0; user < 20; user++)
        {
            for (var repeat = 0; repeat < 2; repeat++)
            {
                var response = await client.PostAsync("/v1/chat/completions",
                    Json($$"""{"model":"{{virtualAlias}}","user":"user-{{user}}","messages":[{"role":"user","content":"hi"}]}"""));
                (servedBy.TryGetValue($"user-{user}", out var set) ? set : servedBy[$"user-{user}"] = []).Add(Header(response, "x-gateway-model")!);
            }
        }

        Assert.All(servedBy.Values, models => Assert.Single(models)); // sticky
        Assert.Equal(2, servedBy.Values.SelectMany(m => m).Distinct().Count()); // both sides used
    }

    [Fact]
    public async Task RuleFallbacks_TakeOverWhenTheRulesTargetFails()
    {
        var broken = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "status-503");
        var healthy = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var virtualAlias = Unique("smart");
        await PutRuleAsync(Unique("chain"), $$"""
            {"priority":1,"match":{"models":["{{virtualAlias}}"]},"targets":[{"model":"{{broken}}"}],"fallbacks":["{{healthy}}"]}
            """);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await SendAsync(client, $$"""{"model":"{{virtualAlias}}","messages":[{"role":"user","content":"hi"}]}""", r => r.IsSuccessStatusCode);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(("2", "true"), (Header(response, "x-gateway-attempts"), Header(response, "x-gateway-fallback")));
    }

    [Fact]
    public async Task RestrictedKey_IsNeverRoutedToAModelOutsideItsList()
    {
        var target = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o");
        var virtualAlias = Unique("auto");
        await PutRuleAsync(Unique("premium"), $$"""{"priority":1,"match":{"models":["{{virtualAlias}}"]},"targets":[{"model":"{{target}}"}]}""");
        var (narrow, _) = await Gateway.CreateKeyAsync(allowedModels: [virtualAlias]);
        var (wide, _) = await Gateway.CreateKeyAsync(allowedModels: [virtualAlias, target]);
        using var narrowClient = Gateway.Client(narrow);
        using var wideClient = Gateway.Client(wide);
        var body = $$"""{"model":"{{virtualAlias}}","messages":[{"role":"user","content":"hi"}]}""";

        var allowed = await SendAsync(wideClient, body, r => r.IsSuccessStatusCode);
        var refused = await narrowClient.PostAsync("/v1/chat/completions", Json(body));

        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode); // the rule is passed over; no model has the virtual alias
    }

    [Theory]
    [InlineData("""{"priority":1,"match":{"prompt_regex":"(unclosed"},"targets":[{"model":"m"}]}""")]
    [InlineData("""{"priority":1,"match":{"prompt_regex":"(a)\\1"},"targets":[{"model":"m"}]}""")]
    [InlineData("""{"priority":1,"match":{"no_such_condition":1},"targets":[{"model":"m"}]}""")]
    [InlineData("""{"priority":1,"targets":[]}""")]
    [InlineData("""{"priority":1,"targets":[{"model":"m","weight":0}]}""")]
    public async Task InvalidRule_Is400(string json)
    {
        using var admin = Gateway.Admin();

        var response = await admin.PutAsync($"/admin/routes/{Unique("bad")}", Json(json));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task RouteTester_SaysWhichRuleMatchesAndTheCandidateChain()
    {
        var target = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var fallback = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "deepseek-chat");
        var virtualAlias = Unique("tester");
        var rule = Unique("tested");
        await PutRuleAsync(rule, $$"""
            {"priority":1,"match":{"models":["{{virtualAlias}}"],"prompt_regex":"^translate\\b"},"targets":[{"model":"{{target}}"}],"fallbacks":["{{fallback}}"]}
            """);
        using var admin = Gateway.Admin();
        var body = $$"""{"request":{"model":"{{virtualAlias}}","messages":[{"role":"user","content":"Translate this"}]} }""";

        var result = await Eventually.UntilAsync(async () =>
        {
            var response = await admin.PostAsync("/admin/routes/test", Json(body));
            return response.IsSuccessStatusCode ? await response.Content.ReadFromJsonAsync<JsonObject>() : null;
        }, r => r?["rule"] is not null); // until the rule reached this instance (NOTIFY)

        Assert.Equal(rule, result!["rule"]!.GetValue<string>());
        Assert.Equal([target, fallback], result["candidates"]!.AsArray().Select(c => c!["alias"]!.GetValue<string>()));
    }
}
