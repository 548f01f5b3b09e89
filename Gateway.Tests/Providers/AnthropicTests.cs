using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;
using OpenAI;
using OpenAI.Chat;

namespace Gateway.Tests.Providers;

/// <summary>The gateway makes Anthropic's Messages API look like OpenAI: driven with the official OpenAI SDK and raw HTTP.</summary>
public sealed class AnthropicTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    private const string WeatherSchema = """{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}""";

    private Task<string> AddClaudeAsync(string model, JsonObject? settings = null, int? maxOutputTokens = null) =>
        Gateway.AddModelAsync(env.Anthropic.BaseUrl, model, protocol: "anthropic", inputPrice: 3m, outputPrice: 15m, cachedPrice: 0.3m,
            settings: settings, maxOutputTokens: maxOutputTokens, secret: FakeAnthropic.ApiKey);

    private ChatClient Sdk(string alias, string key) =>
        new(alias, new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(Gateway.BaseAddress, "/v1") });

    /// <param name="assembled">Called streaming and assembled (the default, for the first-token deadline), or unstreamed
    /// (<c>assemble_streams: false</c>): the client's answer, usage and row are the same.</param>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Text_NonStreaming_SendsTheMessagesFormatAndAnswersInOpenAIs(bool assembled)
    {
        var alias = await AddClaudeAsync("claude-sonnet-4-5", assembled ? null : new JsonObject { ["assemble_streams"] = false });
        var (key, keyId) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{alias}}","max_completion_tokens":256,"temperature":0.5,"top_p":0.9,"stop":"END","user":"user-42",
             "messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"{{marker}}"},
                         {"role":"developer","content":"Answer in English."},{"role":"user","content":"second"}]}
            """));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode); // the fake refuses a system role, unmerged turns, or temperature with top_p
        var body = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        var choice = body["choices"]![0]!;
        Assert.Equal(("Hello from Claude.", "stop"), (choice["message"]!["content"]!.GetValue<string>(), choice["finish_reason"]!.GetValue<string>()));
        Assert.Equal("claude-sonnet-4-5-20250929", body["model"]!.GetValue<string>());
        var usage = body["usage"]!;
        Assert.Equal((35, 12, 47, 10), (usage["prompt_tokens"]!.GetValue<int>(), usage["completion_tokens"]!.GetValue<int>(),
            usage["total_tokens"]!.GetValue<int>(), usage["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>()));

        var sent = env.Anthropic.Find(marker)!;
        Assert.Equal(("/v1/messages", FakeAnthropic.ApiKey, "2023-06-01"), (sent.Path, sent.Authorization, sent.Headers["anthropic-version"]));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse($$"""
            {"model":"claude-sonnet-4-5","max_tokens":256,"system":"Be brief.\n\nAnswer in English.",
             "messages":[{"role":"user","content":[{"type":"text","text":"{{marker}}"},{"type":"text","text":"second"}]}],
             "temperature":0.5,"stop_sequences":["END"],"metadata":{"user_id":"6d894aa3ee802549d7f340e7c1cf0d1c"}{{(assembled ? ",\"stream\":true" : "")}} }
            """), sent.Json), sent.Body);

        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((keyId, 35, 12, 10, false), (row.KeyId, row.PromptTokens, row.CompletionTokens, row.CachedTokens, row.UsageEstimated));
        // The 5 written to the cache (a 5-minute entry) at the default write price, 1.25 × the input price.
        Assert.Equal((20 * 3m + 5 * 3.75m + 10 * 0.3m + 12 * 15m) / 1_000_000m, row.CostUsd);
    }

    [Theory]
    [InlineData(null, 4096)]
    [InlineData(2048, 2048)]
    public async Task MaxTokens_AlwaysSent_FromTheModelsDefaultWhenTheClientGivesNone(int? modelDefault, int expected)
    {
        var alias = await AddClaudeAsync("claude-haiku-4-5", maxOutputTokens: modelDefault);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"{{marker}}"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(expected, env.Anthropic.Find(marker)!.Json["max_tokens"]!.GetValue<int>());
    }

    [Theory]
    [InlineData("""{"anthropic_sampling":"none"}""", """{"temperature":0.2,"top_p":0.5}""", null, null)]
    [InlineData("""{"anthropic_sampling":"all"}""", """{"temperature":0.2,"top_p":0.5}""", 0.2, 0.5)]
    [InlineData("{}", """{"top_p":0.5}""", null, 0.5)]
    [InlineData("{}", """{"temperature":1.7}""", 1.0, null)]
    public async Task Sampling_FollowsTheProvidersSettingAndAnthropicsRange(string settings, string sampling, double? temperature, double? topP)
    {
        var alias = await AddClaudeAsync("claude-opus-4-1", settings: JsonNode.Parse(settings)!.AsObject());
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");
        var body = JsonNode.Parse(sampling)!.AsObject();
        body["model"] = alias;
        body["messages"] = JsonNode.Parse($$"""[{"role":"user","content":"{{marker}}"}]""");

        var response = await client.PostAsync("/v1/chat/completions", Json(body.ToJsonString()));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = env.Anthropic.Find(marker)!.Json;
        Assert.Equal((temperature, topP), (sent["temperature"]?.GetValue<double>(), sent["top_p"]?.GetValue<double>()));
    }

    [Fact]
    public async Task MoreThanOneChoice_Is400()
    {
        var alias = await AddClaudeAsync("claude-sonnet-4-5");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","n":2,"messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("n", (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["param"]!.GetValue<string>());
    }

    [Fact]
    public async Task ApiVersion2026_SendsNoSamplingParameters()
    {
        var alias = await AddClaudeAsync("claude-opus-4-7", settings: new JsonObject { ["anthropic_version"] = "2026-10-21" });
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{alias}}","temperature":0.2,"top_p":0.5,"messages":[{"role":"user","content":"{{marker}}"}]}
            """));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = env.Anthropic.Find(marker)!;
        Assert.Equal("2026-10-21", sent.Headers["anthropic-version"]);
        Assert.Null(sent.Json["temperature"]);
        Assert.Null(sent.Json["top_p"]);
    }

    [Fact]
    public async Task Text_Streaming_WithTheOpenAISdk_GetsTextFinishReasonAndUsage()
    {
        var alias = await AddClaudeAsync("claude-sonnet-4-5");
        var (key, _) = await Gateway.CreateKeyAsync();

        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        await foreach (var update in Sdk(alias, key).CompleteChatStreamingAsync([new UserChatMessage("Say hello")]))
        {
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }

        Assert.Equal("Hello from Claude.", text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.Equal((35, 12), (usage!.InputTokenCount, usage.OutputTokenCount));
    }

    [Fact]
    public async Task Text_Streaming_OneIdThroughoutAndUsageChunkOnlyWhenAsked()
    {
        var alias = await AddClaudeAsync("claude-sonnet-4-5");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","stream":true,"messages":[{"role":"user","content":"hi"}]}"""));

        var events = Api.ChatCompletionsTests.SseEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.Single(chunks.Select(c => c["id"]!.GetValue<string>()).Distinct());
        Assert.All(chunks, c => Assert.NotEmpty(c["choices"]!.AsArray())); // no usage chunk: the client did not ask
        Assert.Equal("stop", chunks[^1]["choices"]![0]!["finish_reason"]!.GetValue<string>());
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((35, 12, true, false), (row.PromptTokens, row.CompletionTokens, row.Streamed, row.UsageEstimated));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ToolConversation_ToolUseAndToolResultRoundTrip(bool streaming)
    {
        var alias = await AddClaudeAsync("claude-sonnet-4-5");
        var (key, _) = await Gateway.CreateKeyAsync();
        var chat = Sdk(alias, key);
        var marker = Guid.NewGuid().ToString("N");
        var options = new ChatCompletionOptions { Tools = { ChatTool.CreateFunctionTool("get_weather", "Current weather", BinaryData.FromString(WeatherSchema)) } };
        List<OpenAI.Chat.ChatMessage> messages = [new SystemChatMessage("You help."), new UserChatMessage($"Weather in Paris? {marker}")];

        ChatFinishReason? finish;
        string content;
        List<ChatToolCall> calls;
        if (streaming)
        {
            (finish, content, calls) = await SdkStreams.CollectAsync(chat, messages, options);
        }
        else
        {
            ChatCompletion completion = await chat.CompleteChatAsync(messages, options);
            (finish, content, calls) = (completion.FinishReason, completion.Content[0].Text, completion.ToolCalls.ToList());
        }

        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        Assert.Equal("I'll check.", content);
        var toolCall = Assert.Single(calls);
        Assert.Equal((FakeAnthropic.ToolUseId, "get_weather"), (toolCall.Id, toolCall.FunctionName));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"location":"Paris"}"""), JsonNode.Parse(toolCall.FunctionArguments.ToString())));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse($$"""[{"name":"get_weather","description":"Current weather","input_schema":{{WeatherSchema}} }]"""),
            env.Anthropic.Find(marker)!.Json["tools"]));

        var assistant = new AssistantChatMessage(calls);
        assistant.Content.Add(ChatMessageContentPart.CreateTextPart(content));
        messages.Add(assistant);
        messages.Add(new ToolChatMessage(toolCall.Id, """{"tempC":21}"""));
        messages.Add(new UserChatMessage("Thanks!"));
        ChatCompletion answer = await chat.CompleteChatAsync(messages, options);

        Assert.Equal(FakeAnthropic.Answer, answer.Content[0].Text);
        var followUp = env.Anthropic.Requests.Last(r => r.Body.Contains("tool_result", StringComparison.Ordinal) && r.Body.Contains(marker, StringComparison.Ordinal)).Json;
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse($$"""
            [{"role":"user","content":[{"type":"text","text":"Weather in Paris? {{marker}}"}]},
             {"role":"assistant","content":[{"type":"text","text":"I'll check."},{"type":"tool_use","id":"{{FakeAnthropic.ToolUseId}}","name":"get_weather","input":{"location":"Paris"} }]},
             {"role":"user","content":[{"type":"tool_result","tool_use_id":"{{FakeAnthropic.ToolUseId}}","content":"{\"tempC\":21}"},{"type":"text","text":"Thanks!"}]}]
            """), followUp["messages"]), followUp["messages"]!.ToJsonString());
    }

    [Theory]
    [InlineData("\"auto\"", null, """{"type":"auto"}""")]
    [InlineData("\"required\"", null, """{"type":"any"}""")]
    [InlineData("\"none\"", null, """{"type":"none"}""")]
    [InlineData("""{"type":"function","function":{"name":"get_weather"}}""", null, """{"type":"tool","name":"get_weather"}""")]
    [InlineData("\"required\"", false, """{"type":"any","disable_parallel_tool_use":true}""")]
    [InlineData(null, false, """{"type":"auto","disable_parallel_tool_use":true}""")]
    public async Task ToolChoice_MapsToAnthropics(string? toolChoice, bool? parallel, string expected)
    {
        var alias = await AddClaudeAsync("claude-sonnet-4-5");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");
        var extra = (toolChoice is null ? "" : $",\"tool_choice\":{toolChoice}") + (parallel is null ? "" : ",\"parallel_tool_calls\":false");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{alias}}","messages":[{"role":"user","content":"{{marker}}"}],
             "tools":[{"type":"function","function":{"name":"get_weather","parameters":{{WeatherSchema}} } }]{{extra}}}
            """));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expected), env.Anthropic.Find(marker)!.Json["tool_choice"]));
    }

    [Fact]
    public async Task Images_BecomeBase64AndUrlImageBlocks()
    {
        var alias = await AddClaudeAsync("claude-sonnet-4-5");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{alias}}","messages":[{"role":"user","content":[{"type":"text","text":"{{marker}}"},
              {"type":"image_url","image_url":{"url":"data:image/jpg;base64,/9j/4AAQ"} },
              {"type":"image_url","image_url":{"url":"https://example.com/a.jpg","detail":"high"} }]}]}
            """));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse($$"""
            [{"type":"text","text":"{{marker}}"},
             {"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/4AAQ"} },
             {"type":"image","source":{"type":"url","url":"https://example.com/a.jpg"} }]
            """), env.Anthropic.Find(marker)!.Json["messages"]![0]!["content"]));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task JsonSchemaResponseFormat_IsAForcedToolWhoseInputBecomesTheAnswer(bool streaming)
    {
        var alias = await AddClaudeAsync("claude-sonnet-4-5");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{alias}}","stream":{{(streaming ? "true" : "false")}},"messages":[{"role":"user","content":"{{marker}}"}],
             "response_format":{"type":"json_schema","json_schema":{"name":"weather","schema":{"type":"object","properties":{"city":{"type":"string"},"tempC":{"type":"number"} } } } } }
            """));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var raw = await response.Content.ReadAsStringAsync();
        string content, finish;
        if (streaming)
        {
            var chunks = Api.ChatCompletionsTests.SseEvents(raw)[..^1].Select(e => JsonNode.Parse(e)!["choices"]![0]!).ToList();
            Assert.All(chunks, c => Assert.Null(c["delta"]!["tool_calls"]));
            content = string.Concat(chunks.Select(c => c["delta"]!["content"]?.GetValue<string>()));
            finish = chunks[^1]["finish_reason"]!.GetValue<string>();
        }
        else
        {
            var choice = JsonNode.Parse(raw)!["choices"]![0]!;
            Assert.Null(choice["message"]!["tool_calls"]);
            (content, finish) = (choice["message"]!["content"]!.GetValue<string>(), choice["finish_reason"]!.GetValue<string>());
        }
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"city":"Paris","tempC":21}"""), JsonNode.Parse(content)));
        Assert.Equal("stop", finish);
        var sent = env.Anthropic.Find(marker)!.Json;
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"type":"tool","name":"json_response"}"""), sent["tool_choice"]));
    }

    [Fact]
    public async Task MaxTokensStop_IsLength()
    {
        var alias = await AddClaudeAsync("claude-sonnet-4-5-max");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal("length", (await response.Content.ReadFromJsonAsync<JsonObject>())!["choices"]![0]!["finish_reason"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("status-529", HttpStatusCode.ServiceUnavailable, "upstream_unavailable")]
    [InlineData("status-429", HttpStatusCode.TooManyRequests, "rate_limit_exceeded")]
    [InlineData("status-500", HttpStatusCode.BadGateway, "upstream_error")]
    [InlineData("status-401", HttpStatusCode.BadGateway, "upstream_error")]
    [InlineData("status-400", HttpStatusCode.BadRequest, null)]
    [InlineData("claude-sonnet-4-5-long-prompt", HttpStatusCode.BadRequest, "context_length_exceeded")]
    public async Task Errors_MapToOpenAIShapeAndStatus(string model, HttpStatusCode status, string? code)
    {
        var alias = await AddClaudeAsync(model);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(status, response.StatusCode);
        if (status == HttpStatusCode.TooManyRequests) Assert.Equal(TimeSpan.FromSeconds(12), response.Headers.RetryAfter?.Delta);
        var error = (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!;
        Assert.Equal(code, error["code"]?.GetValue<string>());
        if (model == "status-400") Assert.Equal(("Fake Anthropic says 400.", "invalid_request_error"), (error["message"]!.GetValue<string>(), error["type"]!.GetValue<string>()));
        Assert.DoesNotContain(FakeAnthropic.ApiKey, error.ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ErrorEventMidStream_EndsWithAnErrorEventAndDoneAndIsMetered()
    {
        var alias = await AddClaudeAsync("claude-sonnet-4-5-overloaded-midstream");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","stream":true,"messages":[{"role":"user","content":"hi"}]}"""));

        var events = Api.ChatCompletionsTests.SseEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        Assert.Contains("\"code\":\"upstream_unavailable\"", events[^2], StringComparison.Ordinal);
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal(((short)503, true), (row.Status, row.UsageEstimated));
        Assert.True(row.CompletionTokens > 0);
    }
}
