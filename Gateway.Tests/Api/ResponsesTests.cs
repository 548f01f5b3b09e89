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
/// The OpenAI Responses front door (<c>/v1/responses</c>) with the official OpenAI .NET SDK's Responses client, against the offline
/// mock model and an OpenAI-compatible fake upstream (translated to chat and back); over raw HTTP where the SDK would hide what is
/// checked (the body sent upstream, error bodies, usage rows, stored responses).
/// </summary>
public sealed class ResponsesTests(TestEnvironment env)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private ResponsesClient Client(string key) =>
        new(new ApiKeyCredential(key), new ResponsesClientOptions { Endpoint = new Uri(env.Gateway.BaseAddress, "/v1") });

    [Fact]
    public async Task Responses_MockModelThroughTheSdk_AnswersAResponse()
    {
        var (key, _) = await env.Gateway.CreateKeyAsync();
        var response = (await Client(key).CreateResponseAsync("mock", "What is the capital of France?", cancellationToken: Ct)).Value;

        Assert.StartsWith("resp_", response.Id, StringComparison.Ordinal);
        Assert.Equal(ResponseStatus.Completed, response.Status);
        Assert.Contains("capital of France", response.GetOutputText(), StringComparison.Ordinal);
        Assert.True(response.Usage.InputTokenCount > 0 && response.Usage.OutputTokenCount > 0);
        Assert.Equal(response.Usage.InputTokenCount + response.Usage.OutputTokenCount, response.Usage.TotalTokenCount);
    }

    [Fact]
    public async Task Responses_StreamedThroughTheSdk_EventsInOrderCarryTheTextAndEndWithUsage()
    {
        var (key, _) = await env.Gateway.CreateKeyAsync();
        var text = new StringBuilder();
        var kinds = new List<string>();
        var sequence = new List<int>();
        ResponseResult? completed = null;
        string? done = null;
        await foreach (var update in await Client(key).CreateResponseStreamingAsync("mock", "Tell me a story", cancellationToken: Ct))
        {
            kinds.Add(update.GetType().Name);
            sequence.Add(update.SequenceNumber);
            if (update is StreamingResponseOutputTextDeltaUpdate delta) text.Append(delta.Delta);
            if (update is StreamingResponseOutputTextDoneUpdate textDone) done = textDone.Text;
            if (update is StreamingResponseCompletedUpdate end) completed = end.Response;
        }

        Assert.Equal(Enumerable.Range(0, sequence.Count), sequence);
        Assert.Equal([nameof(StreamingResponseCreatedUpdate), nameof(StreamingResponseInProgressUpdate), nameof(StreamingResponseOutputItemAddedUpdate),
            nameof(StreamingResponseContentPartAddedUpdate)], kinds.Take(4));
        Assert.Equal([nameof(StreamingResponseOutputTextDoneUpdate), nameof(StreamingResponseContentPartDoneUpdate), nameof(StreamingResponseOutputItemDoneUpdate),
            nameof(StreamingResponseCompletedUpdate)], kinds.TakeLast(4));
        Assert.Contains("story", text.ToString(), StringComparison.Ordinal);
        Assert.Equal(text.ToString(), done);
        Assert.NotNull(completed);
        Assert.Equal(text.ToString(), completed.GetOutputText());
        Assert.True(completed.Usage.InputTokenCount > 0 && completed.Usage.OutputTokenCount > 0);
    }

    [Fact]
    public async Task Responses_OpenAICompatibleUpstream_InstructionsAndLimitsAreTranslated_UsageIsTheUpstreams_OneRowPerRequest()
    {
        var alias = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var (key, keyId) = await env.Gateway.CreateKeyAsync();
        var marker = "responses-door-" + Guid.NewGuid().ToString("N");
        var options = new CreateResponseOptions(alias, [ResponseItem.CreateUserMessageItem(marker)])
        {
            Instructions = "Be brief.", MaxOutputTokenCount = 64, Temperature = 0.5f, StoredOutputEnabled = false,
            Metadata = { ["team"] = "docs" },
        };
        var response = (await Client(key).CreateResponseAsync(options, Ct)).Value;

        Assert.Equal(FakeOpenAI.Answer, response.GetOutputText());
        Assert.Equal((FakeOpenAI.PromptTokens, FakeOpenAI.CachedTokens, FakeOpenAI.CompletionTokens, FakeOpenAI.PromptTokens + FakeOpenAI.CompletionTokens),
            (response.Usage.InputTokenCount, response.Usage.InputTokenDetails.CachedTokenCount, response.Usage.OutputTokenCount, response.Usage.TotalTokenCount));
        Assert.Equal(64, response.MaxOutputTokenCount);
        Assert.Equal("docs", response.Metadata["team"]);
        var sent = env.Upstream.Find(marker)!.Json;
        Assert.Equal(("system", "Be brief."), (sent["messages"]![0]!["role"]!.GetValue<string>(), sent["messages"]![0]!["content"]!.GetValue<string>()));
        Assert.Equal(("user", marker), (sent["messages"]![1]!["role"]!.GetValue<string>(), sent["messages"]![1]!["content"]!.GetValue<string>()));
        Assert.Equal((64, 0.5, "docs"), (sent["max_tokens"]!.GetValue<int>(), Math.Round(sent["temperature"]!.GetValue<double>(), 3), sent["metadata"]!["team"]!.GetValue<string>()));

        var row = Assert.Single(await Eventually.UntilAsync(() => env.UsageRowsForKeyAsync(keyId), rows => rows.Count > 0));
        Assert.Equal((200, FakeOpenAI.PromptTokens, FakeOpenAI.CompletionTokens, "openai.responses"),
            ((int)row.Status, row.PromptTokens, row.CompletionTokens, row.FrontDoor));
        Assert.Equal(response.Id, "resp_" + row.RequestId.ToString("N"));
    }

    [Fact]
    public async Task Responses_FunctionCallRoundTrip_TheCallComesBackAsAnItem_AndItsOutputIsSentOnAsAToolMessage()
    {
        var alias = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "fn-call-fake");
        var (key, _) = await env.Gateway.CreateKeyAsync();
        var client = Client(key);
        var marker = "tool-round-trip-" + Guid.NewGuid().ToString("N");
        var tool = ResponseTool.CreateFunctionTool("get_weather",
            BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"""), strictModeEnabled: false,
            functionDescription: "The weather in a city.");
        List<ResponseItem> input = [ResponseItem.CreateUserMessageItem(marker + " What is the weather in Paris?")];
        var first = (await client.CreateResponseAsync(new CreateResponseOptions(alias, input)
        {
            Tools = { tool }, ToolChoice = ResponseToolChoice.CreateRequiredChoice(), ParallelToolCallsEnabled = false,
        }, Ct)).Value;

        var call = Assert.IsType<FunctionCallResponseItem>(Assert.Single(first.OutputItems));
        Assert.Equal(("get_weather", FakeOpenAI.ToolCallId, FakeOpenAI.ToolArguments), (call.FunctionName, call.CallId, call.FunctionArguments.ToString()));
        var sent = env.Upstream.Find(marker)!.Json;
        Assert.Equal(("function", "get_weather", "required", false), (sent["tools"]![0]!["type"]!.GetValue<string>(),
            sent["tools"]![0]!["function"]!["name"]!.GetValue<string>(), sent["tool_choice"]!.GetValue<string>(), sent["parallel_tool_calls"]!.GetValue<bool>()));

        input.AddRange(first.OutputItems);
        input.Add(ResponseItem.CreateFunctionCallOutputItem(call.CallId, """{"temperature_c":21}"""));
        var second = (await client.CreateResponseAsync(new CreateResponseOptions(alias, input) { Tools = { tool } }, Ct)).Value;

        Assert.Equal(FakeOpenAI.Answer, second.GetOutputText());
        var messages = env.Upstream.Requests.Last(r => r.Body.Contains(marker, StringComparison.Ordinal) && r.Body.Contains("temperature_c", StringComparison.Ordinal))
            .Json["messages"]!.AsArray();
        Assert.Equal(["user", "assistant", "tool"], messages.Select(m => m!["role"]!.GetValue<string>()));
        Assert.Equal(FakeOpenAI.ToolCallId, messages[1]!["tool_calls"]![0]!["id"]!.GetValue<string>());
        Assert.Equal(FakeOpenAI.ToolArguments, messages[1]!["tool_calls"]![0]!["function"]!["arguments"]!.GetValue<string>());
        Assert.Equal((FakeOpenAI.ToolCallId, """{"temperature_c":21}"""), (messages[2]!["tool_call_id"]!.GetValue<string>(), messages[2]!["content"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Responses_StreamedFunctionCall_ArgumentsArriveAsDeltasAndTheItemIsDone()
    {
        var alias = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "fn-call-stream");
        var (key, _) = await env.Gateway.CreateKeyAsync();
        var tool = ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}}}"""), null);
        var arguments = new StringBuilder();
        FunctionCallResponseItem? done = null;
        string? argumentsDone = null;
        ResponseResult? completed = null;
        await foreach (var update in await Client(key).CreateResponseStreamingAsync(
            new CreateResponseOptions(alias, [ResponseItem.CreateUserMessageItem("Weather in Paris?")]) { Tools = { tool }, StreamingEnabled = true }, Ct))
        {
            if (update is StreamingResponseFunctionCallArgumentsDeltaUpdate delta) arguments.Append(delta.Delta.ToString());
            if (update is StreamingResponseFunctionCallArgumentsDoneUpdate argumentsEnd) argumentsDone = argumentsEnd.FunctionArguments.ToString();
            if (update is StreamingResponseOutputItemDoneUpdate { Item: FunctionCallResponseItem item }) done = item;
            if (update is StreamingResponseCompletedUpdate end) completed = end.Response;
        }

        Assert.Equal(FakeOpenAI.ToolArguments, arguments.ToString());
        Assert.Equal(FakeOpenAI.ToolArguments, argumentsDone);
        Assert.NotNull(done);
        Assert.Equal(("get_weather", FakeOpenAI.ToolCallId), (done.FunctionName, done.CallId));
        Assert.NotNull(completed);
        Assert.Equal(FakeOpenAI.PromptTokens, completed.Usage.InputTokenCount);
        Assert.IsType<FunctionCallResponseItem>(Assert.Single(completed.OutputItems));
    }

    [Fact]
    public async Task Responses_JsonSchemaTextFormat_IsSentAsTheChatResponseFormat()
    {
        var alias = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var (key, _) = await env.Gateway.CreateKeyAsync();
        var marker = "json-schema-" + Guid.NewGuid().ToString("N");
        var response = (await Client(key).CreateResponseAsync(new CreateResponseOptions(alias, [ResponseItem.CreateUserMessageItem(marker)])
        {
            TextOptions = new ResponseTextOptions
            {
                TextFormat = ResponseTextFormat.CreateJsonSchemaFormat("city",
                    BinaryData.FromString("""{"type":"object","properties":{"name":{"type":"string"}},"required":["name"],"additionalProperties":false}"""),
                    jsonSchemaIsStrict: true),
            },
        }, Ct)).Value;

        Assert.Equal(ResponseStatus.Completed, response.Status);
        Assert.Equal(ResponseTextFormatKind.JsonSchema, response.TextOptions.TextFormat.Kind);
        var format = env.Upstream.Find(marker)!.Json["response_format"]!;
        Assert.Equal(("json_schema", "city", true, "object"), (format["type"]!.GetValue<string>(), format["json_schema"]!["name"]!.GetValue<string>(),
            format["json_schema"]!["strict"]!.GetValue<bool>(), format["json_schema"]!["schema"]!["type"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Responses_BuiltInTool_Is400NamingIt_AndStillMetered()
    {
        var (key, _) = await env.Gateway.CreateKeyAsync();
        using var http = env.Gateway.Client(key);
        var refused = await http.PostAsync("/v1/responses",
            Json("""{"model":"mock","input":"Search the web","tools":[{"type":"web_search"}]}"""), Ct);

        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        var error = (await refused.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!;
        // The mock, like every chat API, cannot run it; a provider serving the Responses API would (ResponsesPassthroughTests).
        Assert.Equal(("invalid_request_error", "model", "untranslatable_request"),
            (error["type"]!.GetValue<string>(), error["param"]!.GetValue<string>(), error["code"]!.GetValue<string>()));
        Assert.Contains("'web_search'", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        var row = await env.WaitForUsageAsync(Guid.Parse(refused.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((400, "openai.responses"), ((int)row.Status, row.FrontDoor));

        var sdk = await Assert.ThrowsAsync<ClientResultException>(() => Client(key).CreateResponseAsync(new CreateResponseOptions("mock",
            [ResponseItem.CreateUserMessageItem("hi")]) { Tools = { ResponseTool.CreateCodeInterpreterTool(new CodeInterpreterToolContainer(new AutomaticCodeInterpreterToolContainerConfiguration())) } }, Ct));
        Assert.Equal(400, sdk.Status);
        Assert.Contains("'code_interpreter'", sdk.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Responses_WrongKey_Is401_AndAnUpstream429_Is429WithRetryAfter_InOpenAIsShape()
    {
        using var wrong = env.Gateway.Client("gw-not-a-key");
        var unauthorized = await wrong.PostAsync("/v1/responses", Json("""{"model":"mock","input":"hi"}"""), Ct);
        Assert.Equal(HttpStatusCode.Unauthorized, unauthorized.StatusCode);
        Assert.Equal("invalid_api_key", (await unauthorized.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!["code"]!.GetValue<string>());

        var alias = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "status-429");
        var (key, _) = await env.Gateway.CreateKeyAsync();
        var limited = await Assert.ThrowsAsync<ClientResultException>(() => Client(key).CreateResponseAsync(alias, "hi", cancellationToken: Ct));
        Assert.Equal(429, limited.Status);
        using var http = env.Gateway.Client(key);
        var raw = await http.PostAsync("/v1/responses", Json($$"""{"model":"{{alias}}","input":"hi","stream":true}"""), Ct);
        Assert.Equal(HttpStatusCode.TooManyRequests, raw.StatusCode);
        Assert.NotNull(raw.Headers.RetryAfter);
        Assert.Equal("rate_limit_exceeded", (await raw.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!["code"]!.GetValue<string>());
    }

    [Fact]
    public async Task Responses_StoredThenContinued_TheEarlierTurnIsContext_GetAndDeleteWorkForItsKeyOnly()
    {
        var alias = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var (key, _) = await env.Gateway.CreateKeyAsync();
        var (otherKey, _) = await env.Gateway.CreateKeyAsync();
        var client = Client(key);
        var marker = "stored-turn-" + Guid.NewGuid().ToString("N");
        var first = (await client.CreateResponseAsync(new CreateResponseOptions(alias, [ResponseItem.CreateUserMessageItem(marker)])
        {
            Instructions = "Only for the first turn.",
        }, Ct)).Value;

        // Readable at once, by its key, as it was answered.
        var fetched = (await client.GetResponseAsync(first.Id, Ct)).Value;
        Assert.Equal((first.Id, first.GetOutputText()), (fetched.Id, fetched.GetOutputText()));
        var other = await Assert.ThrowsAsync<ClientResultException>(() => Client(otherKey).GetResponseAsync(first.Id, Ct));
        Assert.Equal(404, other.Status);

        var second = (await client.CreateResponseAsync(new CreateResponseOptions(alias, [ResponseItem.CreateUserMessageItem("And then? " + marker + "-2")])
        {
            PreviousResponseId = first.Id,
        }, Ct)).Value;
        Assert.Equal(first.Id, second.PreviousResponseId);
        var messages = env.Upstream.Find(marker + "-2")!.Json["messages"]!.AsArray();
        Assert.Equal([("user", marker), ("assistant", FakeOpenAI.Answer), ("user", "And then? " + marker + "-2")],
            messages.Select(m => (m!["role"]!.GetValue<string>(), m["content"]!.GetValue<string>())));

        // Another key cannot continue it either.
        var continued = await Assert.ThrowsAsync<ClientResultException>(() => Client(otherKey).CreateResponseAsync(
            new CreateResponseOptions(alias, [ResponseItem.CreateUserMessageItem("hi")]) { PreviousResponseId = first.Id }, Ct));
        Assert.Equal(400, continued.Status);
        Assert.Equal(404, (await Assert.ThrowsAsync<ClientResultException>(() => Client(otherKey).DeleteResponseAsync(first.Id, Ct))).Status);

        var deleted = (await client.DeleteResponseAsync(first.Id, Ct)).Value;
        Assert.True(deleted.Deleted);
        Assert.Equal(404, (await Assert.ThrowsAsync<ClientResultException>(() => client.GetResponseAsync(first.Id, Ct))).Status);
        Assert.Equal(second.Id, (await client.GetResponseAsync(second.Id, Ct)).Value.Id);
    }

    [Fact]
    public async Task Responses_StreamedAndStored_IsReadableOnceCompletedArrives_StoreFalseIsNotStored()
    {
        var (key, _) = await env.Gateway.CreateKeyAsync();
        var client = Client(key);
        ResponseResult? completed = null;
        await foreach (var update in await client.CreateResponseStreamingAsync("mock", "Remember me", cancellationToken: Ct))
            if (update is StreamingResponseCompletedUpdate end) completed = end.Response;
        Assert.NotNull(completed);
        Assert.Equal(completed.GetOutputText(), (await client.GetResponseAsync(completed.Id, Ct)).Value.GetOutputText());

        var unstored = (await client.CreateResponseAsync(new CreateResponseOptions("mock", [ResponseItem.CreateUserMessageItem("Forget me")])
        {
            StoredOutputEnabled = false,
        }, Ct)).Value;
        Assert.Equal(404, (await Assert.ThrowsAsync<ClientResultException>(() => client.GetResponseAsync(unstored.Id, Ct))).Status);
    }

    [Fact]
    public async Task Responses_StreamBreaksAfterText_EndsWithErrorAndResponseFailed_AndIsNotStored()
    {
        var alias = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "drop-mid-stream");
        var (key, _) = await env.Gateway.CreateKeyAsync();
        using var http = env.Gateway.Client(key);
        var response = await http.PostAsync("/v1/responses", Json($$"""{"model":"{{alias}}","input":"hi","stream":true}"""), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = (await response.Content.ReadAsStringAsync(Ct)).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e.Split('\n')).Select(lines => (Name: lines[0]["event: ".Length..], Data: JsonNode.Parse(lines[1]["data: ".Length..])!)).ToList();
        Assert.All(events, e => Assert.Equal(e.Name, e.Data["type"]!.GetValue<string>()));
        Assert.Contains(events, e => e.Name == "response.output_text.delta");
        Assert.Equal(["error", "response.failed"], events.TakeLast(2).Select(e => e.Name));
        var failed = events[^1].Data["response"]!;
        Assert.Equal("failed", failed["status"]!.GetValue<string>());
        Assert.False(string.IsNullOrEmpty(failed["error"]!["message"]!.GetValue<string>()));
        Assert.Equal(404, (await Assert.ThrowsAsync<ClientResultException>(() => Client(key).GetResponseAsync(failed["id"]!.GetValue<string>(), Ct))).Status);
    }

    [Fact]
    public async Task Responses_DuplicateKeysOrNotUtf8_Are400InvalidJson_Not500()
    {
        var (key, _) = await env.Gateway.CreateKeyAsync();
        using var http = env.Gateway.Client(key);
        var duplicate = await http.PostAsync("/v1/responses", Json("""{"model":"mock","input":[{"role":"user","content":"a","content":"b"}]}"""), Ct);
        Assert.Equal(HttpStatusCode.BadRequest, duplicate.StatusCode);
        Assert.Equal("invalid_json", (await duplicate.Content.ReadFromJsonAsync<JsonObject>(Ct))!["error"]!["code"]!.GetValue<string>());

        using var notUtf8 = new ByteArrayContent([.. "{\"model\":\"mock\",\"input\":\""u8.ToArray(), 0xC3, 0x28, .. "\"}"u8.ToArray()]);
        notUtf8.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        var invalid = await http.PostAsync("/v1/responses", notUtf8, Ct);
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task Responses_IdsNoStoredResponseCouldHave_AreNotFoundNotServerErrors()
    {
        var (key, _) = await env.Gateway.CreateKeyAsync();
        using var http = env.Gateway.Client(key);
        // A NUL is a character JSON and URLs may carry but PostgreSQL text cannot hold (the Responses fuzz found it as a 500).
        var continued = await http.PostAsync("/v1/responses", Json("""{"model":"mock","input":"hi","previous_response_id":"a\u0000b"}"""), Ct);
        Assert.Equal(HttpStatusCode.BadRequest, continued.StatusCode);
        Assert.Contains("previous_response_not_found", await continued.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        // In a path, Kestrel itself refuses a NUL (400) before the door sees it: either way not a server error.
        Assert.True((await http.GetAsync("/v1/responses/a%00b", Ct)).StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/v1/responses/resp_" + new string('0', 200), Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.DeleteAsync("/v1/responses/" + new string('r', 500), Ct)).StatusCode);
    }
}

