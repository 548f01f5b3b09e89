using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

public sealed class ErrorTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    /// <summary>Asserts OpenAI's error shape and returns its error object.</summary>
    private static async Task<JsonObject> AssertErrorAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        var body = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        var error = body["error"]!.AsObject();
        Assert.False(string.IsNullOrWhiteSpace(error["message"]!.GetValue<string>()));
        Assert.False(string.IsNullOrWhiteSpace(error["type"]!.GetValue<string>()));
        Assert.True(error.ContainsKey("param") && error.ContainsKey("code"));
        Assert.DoesNotContain("   at ", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        return error;
    }

    [Theory]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}""", "invalid_json", null)]
    [InlineData("not json at all", "invalid_json", null)]
    [InlineData("", "invalid_json", null)]
    [InlineData("[1,2]", "invalid_type", null)]
    [InlineData("""{"messages":[{"role":"user","content":"hi"}]}""", "missing_required_parameter", "model")]
    [InlineData("""{"model":"mock"}""", "missing_required_parameter", "messages")]
    [InlineData("""{"model":"mock","messages":[]}""", "empty_array", "messages")]
    [InlineData("""{"model":"mock","messages":"hello"}""", "invalid_type", "messages")]
    [InlineData("""{"model":42,"messages":[{"role":"user","content":"hi"}]}""", "invalid_type", "model")]
    [InlineData("""{"model":"mock","messages":[{"role":"wizard","content":"hi"}]}""", "invalid_value", "messages[0].role")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"temperature":7}""", "invalid_value", "temperature")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"stream":"yes"}""", "invalid_type", "stream")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}""", "invalid_value", "stream_options")]
    [InlineData("null", "invalid_type", null)]
    [InlineData("""{"model":"mock","messages":5}""", "invalid_type", "messages")]
    [InlineData("""{"model":"mock","messages":[null]}""", "invalid_type", "messages")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":{}}]}""", "invalid_type", "messages[0].content")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":[5]}]}""", "invalid_type", "messages[0].content")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":[{"type":7}]}]}""", "invalid_type", "messages[0].content")]
    [InlineData("""{"model":"mock","messages":[{"role":"assistant","content":null,"tool_calls":"call"}]}""", "invalid_type", "messages[0].tool_calls")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"max_tokens":"x"}""", "invalid_type", "max_tokens")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"max_tokens":99999999999}""", "invalid_type", "max_tokens")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"max_tokens":-1}""", "invalid_value", "max_tokens")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"temperature":1e400}""", "invalid_value", "temperature")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"n":0}""", "invalid_value", "n")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"stop":5}""", "invalid_type", "stop")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"tools":{}}""", "invalid_type", "tools")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"tool_choice":5}""", "invalid_type", "tool_choice")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"response_format":"json"}""", "invalid_type", "response_format")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"seed":0.5}""", "invalid_type", "seed")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"seed":1e400}""", "invalid_type", "seed")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"seed":"7"}""", "invalid_type", "seed")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"presence_penalty":1e400}""", "invalid_value", "presence_penalty")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"frequency_penalty":"high"}""", "invalid_value", "frequency_penalty")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"\ud800"}]}""", "invalid_json", null)]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}]} x""", "invalid_json", null)]
    [InlineData("{\"model\":\"mo\u0000ck\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "invalid_json", null)]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"model":"mock"}""", "invalid_json", "model")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi","role":"system"}]}""", "invalid_json", "messages[0].role")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":[{"type":"text","type":"image"}]}]}""", "invalid_json", "messages[0].content")]
    public async Task ChatCompletion_BadBody_Is400InOpenAIShapeAndStillMetered(string body, string code, string? param)
    {
        var (key, keyId) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json(body));

        var error = await AssertErrorAsync(response, HttpStatusCode.BadRequest);
        Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
        Assert.Equal(code, error["code"]!.GetValue<string>());
        Assert.Equal(param, error["param"]?.GetValue<string>());
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((keyId, (short)400, code, 0m), (row.KeyId, row.Status, row.ErrorKind, row.CostUsd));
    }

    [Fact]
    public async Task ChatCompletion_DeeplyNestedJson_Is400NotACrash()
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var deep = new string('[', 5000) + new string(']', 5000);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"mock","messages":[{"role":"user","content":"x"}],"extra":{{deep}}}"""));

        await AssertErrorAsync(response, HttpStatusCode.BadRequest);
    }

    [Theory]
    [InlineData("/v1/chat/completions")]
    [InlineData("/v1/embeddings")]
    public async Task Body_NotValidUtf8_Is400InvalidJsonAndMetered(string path)
    {
        var (key, keyId) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        byte[] body = [.. "{\"model\":\"mock\",\"input\":\"a"u8, 0xC3, 0x28, .. "\",\"messages\":[{\"role\":\"user\",\"content\":\"b"u8, 0xFF,
            .. "\"}]}"u8];
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/json");

        var response = await client.PostAsync(path, content);

        var error = await AssertErrorAsync(response, HttpStatusCode.BadRequest);
        Assert.Equal("invalid_json", error["code"]!.GetValue<string>());
        Assert.Contains("UTF-8", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((keyId, (short)400), (row.KeyId, row.Status));
    }

    [Fact]
    public async Task ChatCompletion_ByteOrderMarkBeforeTheJson_IsIgnored()
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        using var content = new ByteArrayContent([0xEF, 0xBB, 0xBF, .. """{"model":"mock","messages":[{"role":"user","content":"hi"}]}"""u8]);
        content.Headers.ContentType = new("application/json");

        var response = await client.PostAsync("/v1/chat/completions", content);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Theory]
    [InlineData("text/plain", """{"model":"mock","messages":[{"role":"user","content":"hi"}]}""", HttpStatusCode.OK)]
    [InlineData(null, """{"model":"mock","messages":[{"role":"user","content":"hi"}]}""", HttpStatusCode.OK)]
    [InlineData("application/x-www-form-urlencoded", "model=mock&messages=hi", HttpStatusCode.BadRequest)]
    [InlineData("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nmock\r\n--x--", HttpStatusCode.BadRequest)]
    public async Task ChatCompletion_AnyContentType_BodyIsReadAsJson(string? contentType, string body, HttpStatusCode status)
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        using var content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
        if (contentType is not null) content.Headers.TryAddWithoutValidation("Content-Type", contentType);

        var response = await client.PostAsync("/v1/chat/completions", content);

        if (status == HttpStatusCode.OK) Assert.Equal(status, response.StatusCode);
        else Assert.Equal("invalid_json", (await AssertErrorAsync(response, status))["code"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("model")]
    [InlineData("user")]
    public async Task ChatCompletion_ModelOrUserLongerThan256_Is400StringAboveMaxLength(string field)
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var body = new JsonObject { ["model"] = "mock", ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" }) };
        body[field] = new string('m', 257);

        var response = await client.PostAsync("/v1/chat/completions", Json(body.ToJsonString()));

        var error = await AssertErrorAsync(response, HttpStatusCode.BadRequest);
        Assert.Equal(("string_above_max_length", field), (error["code"]!.GetValue<string>(), error["param"]!.GetValue<string>()));
    }

    [Theory]
    [InlineData(null, "missing_api_key")]
    [InlineData("Bearer gw-not-a-real-key", "invalid_api_key")]
    [InlineData("Bearer sk-someone-elses-key", "invalid_api_key")]
    [InlineData("Basic dXNlcjpwYXNz", "missing_api_key")]
    public async Task ChatCompletion_MissingOrUnknownKey_Is401(string? authorization, string code)
    {
        using var client = Gateway.Client();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = Json("""{"model":"mock","messages":[{"role":"user","content":"hi"}]}"""),
        };
        if (authorization is not null) request.Headers.TryAddWithoutValidation("Authorization", authorization);

        var response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead);

        var error = await AssertErrorAsync(response, HttpStatusCode.Unauthorized);
        Assert.Equal(code, error["code"]!.GetValue<string>());
    }

    [Fact]
    public async Task ChatCompletion_ExpiredKey_Is401()
    {
        var (key, _) = await Gateway.CreateKeyAsync(expiresAt: TimeProvider.System.GetUtcNow().AddSeconds(-5));
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json("""{"model":"mock","messages":[{"role":"user","content":"hi"}]}"""));

        var error = await AssertErrorAsync(response, HttpStatusCode.Unauthorized);
        Assert.Equal("expired_api_key", error["code"]!.GetValue<string>());
    }

    [Fact]
    public async Task ChatCompletion_ModelNotAllowedForKey_Is403()
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var (key, _) = await Gateway.CreateKeyAsync(allowedModels: ["mock"]);
        using var client = Gateway.Client(key);

        var marker = Guid.NewGuid().ToString("N");

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"{{marker}}"}]}"""));

        var error = await AssertErrorAsync(response, HttpStatusCode.Forbidden);
        Assert.Equal("model_not_allowed", error["code"]!.GetValue<string>());
        Assert.Null(env.Upstream.Find(marker));
    }

    [Fact]
    public async Task ChatCompletion_UnknownModel_Is404()
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json("""{"model":"gpt-99","messages":[{"role":"user","content":"hi"}]}"""));

        var error = await AssertErrorAsync(response, HttpStatusCode.NotFound);
        Assert.Equal(("model_not_found", "model"), (error["code"]!.GetValue<string>(), error["param"]!.GetValue<string>()));
    }

    [Fact]
    public async Task ChatCompletion_BodyOverTheLimit_Is413()
    {
        var (key, keyId) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var huge = new string('a', 11 * 1024 * 1024);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"mock","messages":[{"role":"user","content":"{{huge}}"}]}"""));

        var error = await AssertErrorAsync(response, HttpStatusCode.RequestEntityTooLarge);
        Assert.Equal("request_too_large", error["code"]!.GetValue<string>());
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((keyId, (short)413), (row.KeyId, row.Status));
    }

    [Fact]
    public async Task ChatCompletion_ChunkedBodyOverTheLimit_Is413()
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var huge = Encoding.UTF8.GetBytes($$"""{"model":"mock","messages":[{"role":"user","content":"{{new string('a', 11 * 1024 * 1024)}}"}]}""");
        using var content = new StreamContent(new MemoryStream(huge));
        content.Headers.ContentType = new("application/json");
        client.DefaultRequestHeaders.TransferEncodingChunked = true; // no Content-Length: the limit is found while reading

        var response = await client.PostAsync("/v1/chat/completions", content);

        var error = await AssertErrorAsync(response, HttpStatusCode.RequestEntityTooLarge);
        Assert.Equal("request_too_large", error["code"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("status-500", HttpStatusCode.BadGateway, "upstream_error")]
    [InlineData("status-502", HttpStatusCode.BadGateway, "upstream_error")]
    [InlineData("status-503", HttpStatusCode.ServiceUnavailable, "upstream_unavailable")]
    [InlineData("status-529", HttpStatusCode.ServiceUnavailable, "upstream_unavailable")]
    [InlineData("status-429", HttpStatusCode.TooManyRequests, "rate_limit_exceeded")]
    [InlineData("status-401", HttpStatusCode.BadGateway, "upstream_error")]
    [InlineData("status-402", HttpStatusCode.BadGateway, "upstream_error")]
    [InlineData("status-404", HttpStatusCode.BadGateway, "upstream_error")]
    [InlineData("hang", HttpStatusCode.GatewayTimeout, "upstream_timeout")]
    public async Task ChatCompletion_UpstreamFails_AnswersGatewayStatusNamingNoSecret(string upstreamModel, HttpStatusCode status, string code)
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, upstreamModel);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        foreach (var stream in new[] { false, true })
        {
            var response = await client.PostAsync("/v1/chat/completions",
                Json($$"""{"model":"{{alias}}","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"hi"}]}"""));

            var retryAfter = response.Headers.RetryAfter?.Delta;
            var error = await AssertErrorAsync(response, status);
            Assert.Equal(code, error["code"]!.GetValue<string>());
            Assert.DoesNotContain("sk-fake-upstream-secret", error.ToJsonString(), StringComparison.Ordinal);
            if (upstreamModel is "status-500" or "status-502" or "status-503" or "status-529" or "status-429") // the provider's own words are kept
                Assert.Contains($"Fake upstream says {upstreamModel[7..]}.", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
            if (status == HttpStatusCode.TooManyRequests) Assert.Equal(TimeSpan.FromSeconds(7), retryAfter); // the provider's Retry-After
            var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
            Assert.Equal(((short)status, code, stream), (row.Status, row.ErrorKind, row.Streamed));
        }
    }

    [Fact]
    public async Task ChatCompletion_UpstreamRejectsTheRequest_ReturnsItsErrorToTheCaller()
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "status-400");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"hi"}]}"""));

        var error = await AssertErrorAsync(response, HttpStatusCode.BadRequest);
        Assert.Equal(("Fake upstream says 400.", "temperature"), (error["message"]!.GetValue<string>(), error["param"]!.GetValue<string>()));
    }

    [Fact]
    public async Task ChatCompletion_UpstreamUnreachable_Is502()
    {
        var closedPort = PostgresFixture.FreePort();
        var alias = await Gateway.AddModelAsync($"http://127.0.0.1:{closedPort}/v1", "gpt-4o-mini");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"hi"}]}"""));

        var error = await AssertErrorAsync(response, HttpStatusCode.BadGateway);
        Assert.Contains("could not connect", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownPath_Is404InOpenAIShape()
    {
        using var client = Gateway.Client();

        var response = await client.GetAsync("/v1/nothing-here");

        await AssertErrorAsync(response, HttpStatusCode.NotFound);
    }
}
