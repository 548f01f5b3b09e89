using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;
using OpenAI;
using OpenAI.Chat;

namespace Gateway.Tests.Providers;

/// <summary>The gateway makes Gemini look like OpenAI: driven with the official OpenAI SDK and raw HTTP.</summary>
public sealed class GeminiTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    // Written as OpenAI clients write schemas; Gemini would refuse additionalProperties, $schema, $defs/$ref and const.
    private const string WeatherSchema = """
        {"$schema":"http://json-schema.org/draft-07/schema#","type":"object","additionalProperties":false,
         "properties":{"city":{"type":"string","description":"City name"},
                       "unit":{"anyOf":[{"$ref":"#/$defs/unit"},{"type":"null"}]},
                       "kind":{"const":"current"}},
         "required":["city"],
         "$defs":{"unit":{"type":"string","enum":["C","F"]}}}
        """;

    private Task<string> AddGeminiAsync(string model, JsonObject? settings = null) =>
        Gateway.AddModelAsync(env.Gemini.BaseUrl, model, protocol: "gemini", inputPrice: 1.25m, outputPrice: 10m, cachedPrice: 0.3125m, secret: FakeGemini.ApiKey,
            settings: settings);

    private ChatClient Sdk(string alias, string key) =>
        new(alias, new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(Gateway.BaseAddress, "/v1") });

    /// <param name="assembled">Called streaming and assembled (the default, for the first-token deadline), or unstreamed
    /// (<c>assemble_streams: false</c>): the client's answer, usage and row are the same.</param>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Text_NonStreaming_SendsGeminisFormatAndAnswersInOpenAIs(bool assembled)
    {
        var alias = await AddGeminiAsync("gemini-2.5-flash", assembled ? null : new JsonObject { ["assemble_streams"] = false });
        var (key, keyId) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{alias}}","max_tokens":100,"temperature":0.3,"top_p":0.9,"stop":["END"],"seed":5,
             "messages":[{"role":"system","content":"Be brief."},{"role":"developer","content":"Answer in English."},
                         {"role":"user","content":"{{marker}}"},{"role":"user","content":[{"type":"text","text":"second part"}]}]}
            """));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.Equal("chat.completion", body["object"]!.GetValue<string>());
        Assert.Equal("gemini-2.5-flash-001", body["model"]!.GetValue<string>());
        var choice = body["choices"]![0]!;
        Assert.Equal(("Hello from Gemini.", "stop"), (choice["message"]!["content"]!.GetValue<string>(), choice["finish_reason"]!.GetValue<string>()));
        var usage = body["usage"]!;
        Assert.Equal((30, 15, 45, 8, 5), (usage["prompt_tokens"]!.GetValue<int>(), usage["completion_tokens"]!.GetValue<int>(),
            usage["total_tokens"]!.GetValue<int>(), usage["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>(),
            usage["completion_tokens_details"]!["reasoning_tokens"]!.GetValue<int>()));

        var sent = env.Gemini.Find(marker)!;
        Assert.Equal(assembled ? "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse" : "/v1beta/models/gemini-2.5-flash:generateContent", sent.Path);
        Assert.Equal(FakeGemini.ApiKey, sent.Authorization);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse($$"""
            {"systemInstruction":{"parts":[{"text":"Be brief.\n\nAnswer in English."}]},
             "contents":[{"role":"user","parts":[{"text":"{{marker}}"},{"text":"second part"}]}],
             "generationConfig":{"maxOutputTokens":100,"temperature":0.3,"topP":0.9,"stopSequences":["END"],"seed":5} }
            """), sent.Json), sent.Body);

        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((keyId, 30, 15, 8, false), (row.KeyId, row.PromptTokens, row.CompletionTokens, row.CachedTokens, row.UsageEstimated));
        Assert.Equal((22 * 1.25m + 8 * 0.3125m + 15 * 10m) / 1_000_000m, row.CostUsd);
        Assert.Equal("gemini-2.5-flash-001", row.ServedModel);
    }

    [Fact]
    public async Task Text_Streaming_WithTheOpenAISdk_GetsTextFinishReasonAndUsage()
    {
        var alias = await AddGeminiAsync("gemini-2.5-flash");
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

        Assert.Equal("Hello from Gemini.", text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.Equal((30, 15), (usage!.InputTokenCount, usage.OutputTokenCount));
    }

    [Fact]
    public async Task Text_Streaming_ChunksShareOneIdAndEndWithUsageThenDone()
    {
        var alias = await AddGeminiAsync("gemini-2.5-flash");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{alias}}","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}
            """));

        var events = Api.ChatCompletionsTests.SseEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        Assert.EndsWith(":streamGenerateContent?alt=sse", env.Gemini.Requests.Last(r => r.Body.Contains("\"hi\"", StringComparison.Ordinal)).Path, StringComparison.Ordinal);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.Single(chunks.Select(c => c["id"]!.GetValue<string>()).Distinct());
        Assert.Equal("assistant", chunks[0]["choices"]![0]!["delta"]!["role"]!.GetValue<string>());
        Assert.Equal("stop", chunks[^2]["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.Empty(chunks[^1]["choices"]!.AsArray());
        Assert.Equal(15, chunks[^1]["usage"]!["completion_tokens"]!.GetValue<int>());
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((30, 15, true, false), (row.PromptTokens, row.CompletionTokens, row.Streamed, row.UsageEstimated));
    }

    [Theory]
    [InlineData(false, "gemini-3-pro-preview")]
    [InlineData(true, "gemini-3-pro-preview")]
    [InlineData(true, "gemini-3-pro-preview-late-signature")]
    public async Task ToolConversation_Gemini3_CarriesTheThoughtSignatureThroughTheOpenAIRoundTrip(bool streaming, string model)
    {
        var alias = await AddGeminiAsync(model);
        var (key, _) = await Gateway.CreateKeyAsync();
        var chat = Sdk(alias, key);
        var marker = Guid.NewGuid().ToString("N");
        var options = new ChatCompletionOptions { Tools = { ChatTool.CreateFunctionTool("get_weather", "Current weather", BinaryData.FromString(WeatherSchema)) } };
        List<OpenAI.Chat.ChatMessage> messages = [new UserChatMessage($"Weather in Paris? {marker}")];

        var (finish, calls) = streaming ? await StreamToolCallsAsync(chat, messages, options) : await CompleteToolCallsAsync(chat, messages, options);

        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        var toolCall = Assert.Single(calls);
        Assert.Equal("get_weather", toolCall.FunctionName);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"city":"Paris"}"""), JsonNode.Parse(toolCall.FunctionArguments.ToString())));
        var parameters = env.Gemini.Find(marker)!.Json["tools"]![0]!["functionDeclarations"]![0]!["parameters"]!;
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""
            {"type":"OBJECT","properties":{"city":{"type":"STRING","description":"City name"},
             "unit":{"nullable":true,"type":"STRING","enum":["C","F"],"format":"enum"},
             "kind":{"enum":["current"],"type":"STRING","format":"enum"}},"required":["city"]}
            """), parameters), parameters.ToJsonString());

        messages.Add(new AssistantChatMessage(calls));
        messages.Add(new ToolChatMessage(toolCall.Id, """{"tempC":21}"""));
        ChatCompletion answer = await chat.CompleteChatAsync(messages, options); // the fake refuses a missing or wrong signature

        Assert.Equal(FakeGemini.Answer, answer.Content[0].Text);
        var followUp = env.Gemini.Requests.Last(r => r.Body.Contains("functionResponse", StringComparison.Ordinal) && r.Body.Contains(marker, StringComparison.Ordinal)).Json;
        var turns = followUp["contents"]!.AsArray();
        Assert.Equal(["user", "model", "user"], turns.Select(t => t!["role"]!.GetValue<string>()));
        Assert.Equal(FakeGemini.Signature, turns[1]!["parts"]![0]!["thoughtSignature"]!.GetValue<string>());
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"functionResponse":{"name":"get_weather","response":{"output":{"tempC":21}}}}"""),
            turns[2]!["parts"]![0]), turns[2]!.ToJsonString());
    }

    private static async Task<(ChatFinishReason?, List<ChatToolCall>)> StreamToolCallsAsync(ChatClient chat, List<OpenAI.Chat.ChatMessage> messages, ChatCompletionOptions options)
    {
        var (finish, _, calls) = await SdkStreams.CollectAsync(chat, messages, options);
        return (finish, calls);
    }

    private static async Task<(ChatFinishReason?, List<ChatToolCall>)> CompleteToolCallsAsync(ChatClient chat, List<OpenAI.Chat.ChatMessage> messages, ChatCompletionOptions options)
    {
        ChatCompletion completion = await chat.CompleteChatAsync(messages, options);
        return (completion.FinishReason, completion.ToolCalls.ToList());
    }

    [Theory]
    [InlineData("\"required\"", """{"mode":"ANY"}""")]
    [InlineData("\"none\"", """{"mode":"NONE"}""")]
    [InlineData("\"auto\"", """{"mode":"AUTO"}""")]
    [InlineData("""{"type":"function","function":{"name":"get_weather"}}""", """{"mode":"ANY","allowedFunctionNames":["get_weather"]}""")]
    public async Task ToolChoice_MapsToFunctionCallingConfig(string toolChoice, string expected)
    {
        var alias = await AddGeminiAsync("gemini-2.5-flash");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{alias}}","tool_choice":{{toolChoice}},"messages":[{"role":"user","content":"{{marker}}"}],
             "tools":[{"type":"function","function":{"name":"get_weather","parameters":{{WeatherSchema}} } }]}
            """));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expected), env.Gemini.Find(marker)!.Json["toolConfig"]!["functionCallingConfig"]));
    }

    [Fact]
    public async Task Images_DataUrlsBecomeInlineDataAndUrlsBecomeFileData()
    {
        var alias = await AddGeminiAsync("gemini-2.5-flash");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{alias}}","messages":[{"role":"user","content":[{"type":"text","text":"{{marker}}"},
              {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="} },
              {"type":"image_url","image_url":{"url":"https://example.com/cat.webp"} }]}]}
            """));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var parts = env.Gemini.Find(marker)!.Json["contents"]![0]!["parts"]!;
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse($$"""
            [{"text":"{{marker}}"},{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="} },
             {"fileData":{"mimeType":"image/webp","fileUri":"https://example.com/cat.webp"} }]
            """), parts), parts.ToJsonString());
    }

    [Fact]
    public async Task JsonSchemaResponseFormat_BecomesResponseMimeTypeAndSchema()
    {
        var alias = await AddGeminiAsync("gemini-2.5-flash");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{alias}}","messages":[{"role":"user","content":"{{marker}}"}],
             "response_format":{"type":"json_schema","json_schema":{"name":"w","strict":true,"schema":{{WeatherSchema}} } } }
            """));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var config = env.Gemini.Find(marker)!.Json["generationConfig"]!;
        Assert.Equal("application/json", config["responseMimeType"]!.GetValue<string>());
        Assert.Equal("OBJECT", config["responseSchema"]!["type"]!.GetValue<string>());
        Assert.Null(config["responseSchema"]!["additionalProperties"]);
    }

    [Theory]
    [InlineData("gemini-2.5-flash-blocked", "content_filter")]
    [InlineData("gemini-2.5-flash-max", "length")]
    public async Task FinishReasons_MapToOpenAIs(string model, string expected)
    {
        var alias = await AddGeminiAsync(model);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        foreach (var stream in new[] { false, true })
        {
            var response = await client.PostAsync("/v1/chat/completions",
                Json($$"""{"model":"{{alias}}","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"hi"}]}"""));

            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var text = await response.Content.ReadAsStringAsync();
            var finish = stream
                ? Api.ChatCompletionsTests.SseEvents(text)[..^1].Select(e => JsonNode.Parse(e)!["choices"]!.AsArray().FirstOrDefault()?["finish_reason"]?.GetValue<string>()).Last(f => f is not null)
                : JsonNode.Parse(text)!["choices"]![0]!["finish_reason"]!.GetValue<string>();
            Assert.Equal(expected, finish);
        }
    }

    [Fact]
    public async Task ErrorEventMidStream_EndsWithAnOpenAIErrorEventAndDone()
    {
        var alias = await AddGeminiAsync("gemini-2.5-flash-error-midstream");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","stream":true,"messages":[{"role":"user","content":"hi"}]}"""));

        var events = Api.ChatCompletionsTests.SseEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        Assert.Contains("\"code\":\"upstream_unavailable\"", events[^2], StringComparison.Ordinal);
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal(((short)503, true), (row.Status, row.UsageEstimated));
    }

    [Theory]
    [InlineData("photo.png")]
    [InlineData("ftp://example.com/a.png")]
    [InlineData("data:image/png,notbase64")]
    public async Task BadImageUrl_Is400NotACrash(string url)
    {
        var alias = await AddGeminiAsync("gemini-2.5-flash");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{alias}}","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"{{url}}"} }]}]}
            """));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("messages.content", (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["param"]!.GetValue<string>());
    }

    [Fact]
    public async Task MalformedFunctionCall_IsAnUpstreamErrorNotAStop()
    {
        var alias = await AddGeminiAsync("gemini-2.5-flash-malformed");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Contains("MALFORMED_FUNCTION_CALL", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task MalformedFunctionCall_IsChargedWhatGeminiReported_AssembledOrNot(bool assembled)
    {
        var alias = await AddGeminiAsync("gemini-2.5-flash-malformed", assembled ? null : new JsonObject { ["assemble_streams"] = false });
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((30, 15, false), (row.PromptTokens, row.CompletionTokens, row.UsageEstimated)); // candidates + thoughts, as billed
    }

    [Theory]
    [InlineData("status-429", HttpStatusCode.TooManyRequests, "rate_limit_exceeded")]
    [InlineData("status-503", HttpStatusCode.ServiceUnavailable, "upstream_unavailable")]
    [InlineData("status-500", HttpStatusCode.BadGateway, "upstream_error")]
    [InlineData("gemini-2.5-flash-api-key-invalid", HttpStatusCode.BadGateway, "upstream_error")]
    [InlineData("status-400", HttpStatusCode.BadRequest, null)]
    public async Task Errors_MapToOpenAIShapeAndStatus(string model, HttpStatusCode status, string? code)
    {
        var alias = await AddGeminiAsync(model);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(status, response.StatusCode);
        if (status == HttpStatusCode.TooManyRequests) Assert.Equal(TimeSpan.FromSeconds(37), response.Headers.RetryAfter?.Delta); // RetryInfo
        var error = (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!;
        Assert.Equal(code, error["code"]?.GetValue<string>());
        if (status == HttpStatusCode.BadRequest) Assert.Equal("Fake Gemini says 400.", error["message"]!.GetValue<string>());
        Assert.DoesNotContain(FakeGemini.ApiKey, error.ToJsonString(), StringComparison.Ordinal);
    }
}
