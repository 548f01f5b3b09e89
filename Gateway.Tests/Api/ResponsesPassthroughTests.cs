using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;
using OpenAI;
using OpenAI.Responses;

#pragma warning disable OPENAI001 // the SDK marks its Responses client experimental

namespace Gateway.Tests.Api;

/// <summary>
/// The Responses door in front of a provider that serves the Responses API itself (<c>responses_api: true</c>, the default for
/// api.openai.com): the client's body goes to <c>{base}/responses</c> as it wrote it (built-in tools included) and the answer
/// comes back as the upstream wrote it, under the gateway's response id, metered from the upstream's usage; a stored response
/// continues with <c>previous_response_id</c> from the gateway's store. With the official OpenAI .NET SDK's Responses client where
/// it shows what is checked, raw HTTP where it would hide it.
/// </summary>
public sealed class ResponsesPassthroughTests(TestEnvironment env)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly JsonObject ServesResponses = new() { ["responses_api"] = true };

    private ResponsesClient Client(string key) =>
        new(new ApiKeyCredential(key), new ResponsesClientOptions { Endpoint = new Uri(env.Gateway.BaseAddress, "/v1") });

    private async Task<(string Alias, string Key, Guid KeyId)> SetUpAsync(string upstreamModel = "gpt-5-mini", string? keyJson = null)
    {
        var alias = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, upstreamModel, settings: (JsonObject)ServesResponses.DeepClone());
        if (keyJson is not null)
        {
            var (capped, cappedId) = await env.Gateway.CreateKeyFromJsonAsync(keyJson);
            return (alias, capped, cappedId);
        }
        var (key, keyId) = await env.Gateway.CreateKeyAsync();
        return (alias, key, keyId);
    }

    private static List<(string Name, JsonObject Data)> Events(string body) => [.. body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
        .Select(block => block.Split('\n'))
        .Select(lines => (lines.Single(l => l.StartsWith("event: ", StringComparison.Ordinal))[7..],
            JsonNode.Parse(lines.Single(l => l.StartsWith("data: ", StringComparison.Ordinal))[6..])!.AsObject()))];

    [Fact]
    public async Task Responses_ToAProviderServingResponses_PassesTheBodyThroughWithBuiltInTools_AndMetersTheUpstreamsUsage()
    {
        var (alias, key, _) = await SetUpAsync();
        var marker = "passthrough-" + Guid.NewGuid().ToString("N");
        using var http = env.Gateway.Client(key);
        var answered = await http.PostAsync("/v1/responses", Json($$"""
            {"model":"{{alias}}","input":"Weather in Paris? {{marker}}","instructions":"Be brief.","tools":[{"type":"web_search","search_context_size":"low"}],
             "include":["reasoning.encrypted_content"],"reasoning":{"effort":"low"},"store":false,"x_unknown_field":{"kept":true} }
            """), Ct);
        var response = (await answered.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        Assert.True(answered.StatusCode == HttpStatusCode.OK, response.ToJsonString());

        // Sent as written: the built-in tool, include, reasoning and an unknown field, only the model replaced.
        var sent = env.Upstream.Find(marker)!;
        Assert.Equal("/v1/responses", sent.Path);
        var body = sent.Json;
        Assert.Equal(("gpt-5-mini", "web_search", "low", "reasoning.encrypted_content", true),
            (body["model"]!.GetValue<string>(), body["tools"]![0]!["type"]!.GetValue<string>(), body["tools"]![0]!["search_context_size"]!.GetValue<string>(),
             body["include"]![0]!.GetValue<string>(), body["x_unknown_field"]!["kept"]!.GetValue<bool>()));
        Assert.Null(body["stream"]);

        // Answered as written (reasoning and web_search_call items survive), under the gateway's id.
        var requestId = Guid.Parse(answered.Headers.GetValues("x-gateway-request-id").Single());
        Assert.Equal("resp_" + requestId.ToString("N"), response["id"]!.GetValue<string>());
        Assert.Equal(["reasoning", "web_search_call", "message"], response["output"]!.AsArray().Select(i => i!["type"]!.GetValue<string>()));
        Assert.Equal(FakeOpenAI.ResponsesAnswer, response["output"]![2]!["content"]![0]!["text"]!.GetValue<string>());
        Assert.Equal((FakeOpenAI.ResponsesInputTokens, FakeOpenAI.ResponsesOutputTokens), (response["usage"]!["input_tokens"]!.GetValue<int>(), response["usage"]!["output_tokens"]!.GetValue<int>()));

        var row = await env.WaitForUsageAsync(requestId);
        Assert.Equal((FakeOpenAI.ResponsesInputTokens, FakeOpenAI.ResponsesOutputTokens, FakeOpenAI.ResponsesCachedTokens, false, "openai.responses", (short)200),
            (row.PromptTokens, row.CompletionTokens, row.CachedTokens, row.UsageEstimated, row.FrontDoor, row.Status));
        Assert.True(row.CostUsd > 0);
    }

    [Fact]
    public async Task Responses_StreamedToAProviderServingResponses_RelaysItsEventsUnderTheGatewaysId_ThroughTheSdk()
    {
        var (alias, key, keyId) = await SetUpAsync();
        var options = new CreateResponseOptions(alias, [ResponseItem.CreateUserMessageItem("Weather in Paris?")]) { StoredOutputEnabled = false, StreamingEnabled = true };
        options.Tools.Add(ResponseTool.CreateWebSearchTool());
        var text = new StringBuilder();
        var kinds = new List<string>();
        var sequence = new List<int>();
        ResponseResult? completed = null;
        await foreach (var update in await Client(key).CreateResponseStreamingAsync(options, Ct))
        {
            kinds.Add(update.GetType().Name);
            sequence.Add(update.SequenceNumber);
            if (update is StreamingResponseOutputTextDeltaUpdate delta) text.Append(delta.Delta);
            if (update is StreamingResponseCompletedUpdate end) completed = end.Response;
        }

        Assert.Equal(FakeOpenAI.ResponsesAnswer, text.ToString());
        Assert.Equal(Enumerable.Range(0, sequence.Count), sequence);
        Assert.Contains(nameof(StreamingResponseWebSearchCallSearchingUpdate), kinds);
        Assert.NotNull(completed);
        Assert.StartsWith("resp_", completed!.Id, StringComparison.Ordinal);
        Assert.NotEqual("resp_fake0001", completed.Id);
        Assert.Equal((FakeOpenAI.ResponsesInputTokens, FakeOpenAI.ResponsesOutputTokens), (completed.Usage.InputTokenCount, completed.Usage.OutputTokenCount));

        var requestId = Guid.Parse(completed.Id["resp_".Length..]);
        var row = await env.WaitForUsageAsync(requestId);
        Assert.Equal((keyId, FakeOpenAI.ResponsesInputTokens, FakeOpenAI.ResponsesOutputTokens, true, "openai.responses"),
            (row.KeyId, row.PromptTokens, row.CompletionTokens, row.Streamed, row.FrontDoor));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Responses_StoredPassedThrough_ContinuesWithPreviousResponseId_SendingTheConversationAsInput(bool stream)
    {
        var (alias, key, _) = await SetUpAsync();
        using var http = env.Gateway.Client(key);
        var first = await http.PostAsync("/v1/responses", Json($$"""{"model":"{{alias}}","input":"First question","tools":[{"type":"web_search"}],"stream":{{(stream ? "true" : "false")}}}"""), Ct);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var firstId = "resp_" + first.Headers.GetValues("x-gateway-request-id").Single().Replace("-", "", StringComparison.Ordinal);
        await first.Content.ReadAsStringAsync(Ct);

        // Stored before the client had it whole: found at once, as the upstream wrote it, under the gateway's id.
        var stored = (await http.GetFromJsonAsync<JsonObject>($"/v1/responses/{firstId}", Ct))!;
        Assert.Equal((firstId, "web_search_call"), (stored["id"]!.GetValue<string>(), stored["output"]![1]!["type"]!.GetValue<string>()));

        var marker = "second-" + Guid.NewGuid().ToString("N");
        var second = await http.PostAsync("/v1/responses", Json($$"""{"model":"{{alias}}","previous_response_id":"{{firstId}}","input":"{{marker}}"}"""), Ct);
        var answer = (await second.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        Assert.True(second.StatusCode == HttpStatusCode.OK, answer.ToJsonString());
        Assert.Equal(firstId, answer["previous_response_id"]!.GetValue<string>());

        // The upstream never heard of the gateway's id: it got the conversation, its own output items (with their ids) included.
        var sent = env.Upstream.Find(marker)!.Json;
        Assert.Null(sent["previous_response_id"]);
        var input = sent["input"]!.AsArray();
        Assert.Equal(["message", "reasoning", "web_search_call", "message", "message"], input.Select(i => i!["type"]!.GetValue<string>()));
        Assert.Equal(("First question", "rs_fake0001", marker), (input[0]!["content"]!.GetValue<string>(), input[1]!["id"]!.GetValue<string>(),
            input[4]!["content"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Responses_BuiltInToolRoutedToAChatApi_Is400NamingIt_ButFunctionToolsStillTranslate()
    {
        // The same upstream without responses_api is sent chat completions: a built-in tool cannot go there.
        var chatOnly = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var (key, _) = await env.Gateway.CreateKeyAsync();
        using var http = env.Gateway.Client(key);
        var refused = await http.PostAsync("/v1/responses", Json($$"""{"model":"{{chatOnly}}","input":"Search","tools":[{"type":"web_search"},{"type":"custom","name":"grammar"}]}"""), Ct);
        var error = (await refused.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!;
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal("untranslatable_request", error["code"]!.GetValue<string>());
        Assert.Contains("the tool 'web_search'", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("the tool 'custom'", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        var row = await env.WaitForUsageAsync(Guid.Parse(refused.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((400, "openai.responses"), ((int)row.Status, row.FrontDoor));

        var marker = "fn-" + Guid.NewGuid().ToString("N");
        var translated = await http.PostAsync("/v1/responses", Json($$"""{"model":"{{chatOnly}}","input":"{{marker}}","tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{} } }]}"""), Ct);
        Assert.Equal(HttpStatusCode.OK, translated.StatusCode);
        Assert.NotEqual("/v1/responses", env.Upstream.Find(marker)!.Path);
        Assert.NotNull(env.Upstream.Find(marker)!.Json["messages"]); // a chat completions request
    }

    [Fact]
    public async Task Responses_CappedKeyNamingNoOutputLimit_SendsTheReservationAsMaxOutputTokens()
    {
        var (alias, key, _) = await SetUpAsync(keyJson: """{"name":"capped-responses","hard_cap_usd":5}""");
        var marker = "capped-" + Guid.NewGuid().ToString("N");
        using var http = env.Gateway.Client(key);
        var answered = await http.PostAsync("/v1/responses", Json($$"""{"model":"{{alias}}","input":"{{marker}}","store":false}"""), Ct);
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);

        // Without a limit the upstream could write past what the cap left: the reservation bounds it.
        var limit = env.Upstream.Find(marker)!.Json["max_output_tokens"];
        Assert.NotNull(limit);
        Assert.True(limit!.GetValue<int>() > 0);

        var own = "own-" + Guid.NewGuid().ToString("N");
        await http.PostAsync("/v1/responses", Json($$"""{"model":"{{alias}}","input":"{{own}}","max_output_tokens":77,"store":false}"""), Ct);
        Assert.Equal(77, env.Upstream.Find(own)!.Json["max_output_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task Responses_PassedThroughStreamThatBreaks_EndsWithErrorAndResponseFailed_NumberedOn_AndIsMeteredOnce()
    {
        var (alias, key, _) = await SetUpAsync("drop-mid-stream");
        using var http = env.Gateway.Client(key);
        var streamed = await http.PostAsync("/v1/responses", Json($$"""{"model":"{{alias}}","input":"Hello","stream":true,"store":false}"""), Ct);
        Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
        var events = Events(await streamed.Content.ReadAsStringAsync(Ct));

        Assert.Equal(["error", "response.failed"], events.TakeLast(2).Select(e => e.Name));
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => e.Data["sequence_number"]!.GetValue<int>()));
        Assert.Equal("Hello from", string.Concat(events.Where(e => e.Name == "response.output_text.delta").Select(e => e.Data["delta"]!.GetValue<string>())));
        var requestId = Guid.Parse(streamed.Headers.GetValues("x-gateway-request-id").Single());
        var row = await env.WaitForUsageAsync(requestId);
        Assert.True(row.Status >= 500, $"status {row.Status}");
        Assert.True(row.CompletionTokens > 0, "the text the client got is charged");
    }

    [Fact]
    public async Task Responses_UpstreamRateLimit_Is429InOpenAIsShape()
    {
        var (alias, key, _) = await SetUpAsync("status-429");
        using var http = env.Gateway.Client(key);
        var limited = await http.PostAsync("/v1/responses", Json($$"""{"model":"{{alias}}","input":"Hello","tools":[{"type":"web_search"}]}"""), Ct);
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.NotNull(limited.Headers.RetryAfter);
        Assert.NotNull((await limited.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!["message"]);
    }

    [Fact]
    public async Task Responses_CappedKey_InputTheUpstreamFetchesItself_Is400_ButAnUncappedKeySendsIt()
    {
        var (alias, capped, _) = await SetUpAsync(keyJson: """{"name":"capped-by-reference","hard_cap_usd":5}""");
        const string byUrl = """[{"role":"user","content":[{"type":"input_file","file_url":"https://example.invalid/1000-pages.pdf"},{"type":"input_text","text":"Summarize"}]}]""";
        using var cappedHttp = env.Gateway.Client(capped);
        var refused = await cappedHttp.PostAsync("/v1/responses", Json($$"""{"model":"{{alias}}","input":{{byUrl}},"store":false}"""), Ct);
        var error = (await refused.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!;
        Assert.Equal((HttpStatusCode.BadRequest, "unbounded_input"), (refused.StatusCode, error["code"]!.GetValue<string>()));
        Assert.Contains("a file by URL", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        var template = await cappedHttp.PostAsync("/v1/responses", Json($$"""{"model":"{{alias}}","prompt":{"id":"pmpt_1","variables":{"x":"y"} },"input":"hi","store":false}"""), Ct);
        Assert.Equal(HttpStatusCode.BadRequest, template.StatusCode);
        // Also as a tool's output: the upstream fetches it all the same.
        const string inToolOutput = """[{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":[{"type":"input_file","file_url":"https://example.invalid/1000-pages.pdf"}]}]""";
        var fromTool = await cappedHttp.PostAsync("/v1/responses", Json($$"""{"model":"{{alias}}","input":{{inToolOutput}},"store":false}"""), Ct);
        Assert.Equal((HttpStatusCode.BadRequest, "unbounded_input"), (fromTool.StatusCode, (await fromTool.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!["code"]!.GetValue<string>()));

        var (key, _) = await env.Gateway.CreateKeyAsync();
        using var http = env.Gateway.Client(key);
        var marker = "url-" + Guid.NewGuid().ToString("N");
        var sent = await http.PostAsync("/v1/responses", Json($$"""{"model":"{{alias}}","input":{{byUrl}},"instructions":"{{marker}}","store":false}"""), Ct);
        Assert.Equal(HttpStatusCode.OK, sent.StatusCode);
        Assert.Equal("input_file", env.Upstream.Find(marker)!.Json["input"]![0]!["content"]![0]!["type"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("""{"input":"hi","conversation":"conv_123"}""", "conversation")]
    [InlineData("""{"input":[{"type":"item_reference","id":"msg_123"}]}""", "input")]
    [InlineData("""{"input":[{"role":"user","content":[{"type":"input_file","file_id":"file-123"}]}]}""", "input")]
    [InlineData("""{"input":[{"role":"user","content":[{"type":"input_image","file_id":"file-123"}]}]}""", "input")]
    [InlineData("""{"input":[{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":[{"type":"input_file","file_id":"file-123"}]}]}""", "input")]
    public async Task Responses_StateHeldByTheUpstreamsOrganization_Is400EvenToAProviderServingResponses(string body, string param)
    {
        // Conversations, items and files stored at OpenAI belong to the organization behind the gateway, not to a key.
        var (alias, key, _) = await SetUpAsync();
        using var http = env.Gateway.Client(key);
        var request = JsonNode.Parse(body)!.AsObject();
        request["model"] = alias;
        var refused = await http.PostAsync("/v1/responses", Json(request.ToJsonString()), Ct);
        var error = (await refused.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!;
        Assert.Equal((HttpStatusCode.BadRequest, param), (refused.StatusCode, error["param"]!.GetValue<string>()));
        var row = await env.WaitForUsageAsync(Guid.Parse(refused.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal(400, (int)row.Status);
    }

    [Fact]
    public async Task Responses_StreamedFromAServerThatNamesNoEvents_EndsOnceWithItsOwnCompletedResponse()
    {
        // The event's own "type" names it when the server leaves out the event: line.
        var (alias, key, _) = await SetUpAsync("no-event-names");
        using var http = env.Gateway.Client(key);
        var streamed = await http.PostAsync("/v1/responses", Json($$"""{"model":"{{alias}}","input":"Hello","stream":true}"""), Ct);
        var events = Events(await streamed.Content.ReadAsStringAsync(Ct));
        Assert.Single(events, e => e.Name == "response.completed");
        var completed = events[^1];
        Assert.Equal("response.completed", completed.Name);
        Assert.Equal("message", completed.Data["response"]!["output"]![1]!["type"]!.GetValue<string>());
        var id = completed.Data["response"]!["id"]!.GetValue<string>();
        var stored = (await http.GetFromJsonAsync<JsonObject>($"/v1/responses/{id}", Ct))!;
        Assert.Equal(2, stored["output"]!.AsArray().Count);
    }

    [Fact]
    public async Task Responses_ModelThatReasonsPastTheFirstTokenDeadline_IsNotTakenForStalled_AndItsReasoningIsRelayedAtOnce()
    {
        // The model's first-token deadline is 1 s; it reasons for 3 s before its first word. Its reasoning item beginning is the
        // answer under way: neither a timeout nor a failover, and the client sees that item before the text.
        var alias = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "slow-reasoning", settings: (JsonObject)ServesResponses.DeepClone(), ttftTimeoutMs: 1000, timeoutMs: 20_000);
        var (key, _) = await env.Gateway.CreateKeyAsync();
        using var http = env.Gateway.Client(key);
        var streamed = await http.PostAsync("/v1/responses", Json($$"""{"model":"{{alias}}","input":"Think first","stream":true,"store":false}"""), Ct);
        Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
        var events = Events(await streamed.Content.ReadAsStringAsync(Ct));
        Assert.True(events[^1].Name == "response.completed", string.Join("\n", events.TakeLast(2).Select(e => e.Data.ToJsonString())));
        var reasoning = events.FindIndex(e => e.Name == "response.output_item.added" && e.Data["item"]!["type"]!.GetValue<string>() == "reasoning");
        var text = events.FindIndex(e => e.Name == "response.output_text.delta");
        Assert.InRange(reasoning, 0, text - 1);
        Assert.Equal(FakeOpenAI.ResponsesAnswer, string.Concat(events.Where(e => e.Name == "response.output_text.delta").Select(e => e.Data["delta"]!.GetValue<string>())));
    }

    [Theory]
    [InlineData("https://api.openai.com/v1", null, true)]
    [InlineData("https://api.deepseek.com", null, false)]
    [InlineData("https://api.deepseek.com", true, true)]
    [InlineData("https://api.openai.com/v1", false, false)]
    public void ServesResponses_ByDefaultOnlyForApiOpenAIcom(string baseUrl, bool? setting, bool expected) =>
        Assert.Equal(expected, new Gateway.Core.Catalog.ProviderSettings { ResponsesApi = setting }.ServesResponses(new Uri(baseUrl)));
}
