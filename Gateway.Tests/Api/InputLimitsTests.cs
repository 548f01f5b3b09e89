using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

/// <summary>
/// Each request limit at its edge: JSON depth, counts of messages, tools, stop sequences, content parts and embedding
/// inputs, header size and count, slow headers and bodies, idle keep-alive. Defaults are tested on the shared host;
/// the configuration keys on a host of its own with tight limits.
/// </summary>
public sealed class InputLimitsTests(TestEnvironment env, InputLimitsTests.TightHost tight) : IClassFixture<InputLimitsTests.TightHost>
{
    /// <summary>A gateway with every limit turned down, so edges are cheap to reach and the keys are seen to work.</summary>
    public sealed class TightHost : IAsyncLifetime
    {
        public GatewayHost Host { get; private set; } = null!;

        public ValueTask InitializeAsync()
        {
            Host = new GatewayHost(TestEnvironment.Current.Postgres.ConnectionString, new()
            {
                ["Gateway:MaxMessages"] = "3",
                ["Gateway:MaxTools"] = "2",
                ["Gateway:MaxStopSequences"] = "2",
                ["Gateway:MaxContentParts"] = "4",
                ["Gateway:MaxEmbeddingInputs"] = "3",
                ["Gateway:Server:MaxRequestHeaderCount"] = "20",
                ["Gateway:Server:MaxRequestHeadersTotalBytes"] = "4096",
                ["Gateway:Server:MaxRequestLineBytes"] = "1024",
                ["Gateway:Server:RequestHeadersTimeoutSeconds"] = "1",
                ["Gateway:Server:MinRequestBodyBytesPerSecond"] = "100",
                ["Gateway:Server:MinRequestBodyGraceSeconds"] = "2",
                ["Gateway:Server:KeepAliveTimeoutSeconds"] = "1",
            });
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync() => Host is null ? ValueTask.CompletedTask : Host.DisposeAsync();
    }

    private GatewayHost Gateway => env.Gateway;

    private static string Messages(int count) =>
        string.Join(",", Enumerable.Range(0, count).Select(i => $$"""{"role":"user","content":"m{{i}}"}"""));

    private static async Task<JsonObject> ErrorAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        Assert.Equal(status, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!.AsObject();
    }

    private static async Task AssertRefusedAsync(HttpResponseMessage response, string code, string? param)
    {
        var error = await ErrorAsync(response, HttpStatusCode.BadRequest);
        Assert.Equal((code, param), (error["code"]!.GetValue<string>(), error["param"]?.GetValue<string>()));
    }

    [Fact]
    public async Task ChatCompletion_NestedDeeperThan64Levels_Is400NamingTheLimit()
    {
        var (key, keyId) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        // The body object is level 1, so "metadata" with 63 nested arrays reaches level 64 exactly.
        string Body(int arrays) => $$"""{"model":"mock","messages":[{"role":"user","content":"hi"}],"metadata":{{new string('[', arrays)}}{{new string(']', arrays)}}}""";

        var atLimit = await client.PostAsync("/v1/chat/completions", Json(Body(63)));
        var over = await client.PostAsync("/v1/chat/completions", Json(Body(64)));

        Assert.Equal(HttpStatusCode.OK, atLimit.StatusCode);
        var error = await ErrorAsync(over, HttpStatusCode.BadRequest);
        Assert.Equal("invalid_json", error["code"]!.GetValue<string>());
        Assert.Contains("nested too deeply", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        var row = await env.WaitForUsageAsync(Guid.Parse(over.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((keyId, (short)400, "invalid_json"), (row.KeyId, row.Status, row.ErrorKind));
    }

    [Fact]
    public async Task ChatCompletion_MessagesOverTheDefault2048_Is400ArrayAboveMaxLength()
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var atLimit = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"mock","messages":[{{Messages(2048)}}]}"""));
        var over = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"mock","messages":[{{Messages(2049)}}]}"""));

        Assert.Equal(HttpStatusCode.OK, atLimit.StatusCode);
        await AssertRefusedAsync(over, "array_above_max_length", "messages");
    }

    [Fact]
    public async Task ChatCompletion_ToolsOverTheDefault128_Is400ArrayAboveMaxLength()
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        string Body(int tools) => $$"""{"model":"mock","messages":[{"role":"user","content":"hi"}],"tools":[{{string.Join(",",
            Enumerable.Range(0, tools).Select(i => $$$"""{"type":"function","function":{"name":"f{{{i}}}"}}"""))}}]}""";

        var atLimit = await client.PostAsync("/v1/chat/completions", Json(Body(128)));
        var over = await client.PostAsync("/v1/chat/completions", Json(Body(129)));

        Assert.Equal(HttpStatusCode.OK, atLimit.StatusCode);
        await AssertRefusedAsync(over, "array_above_max_length", "tools");
    }

    [Fact]
    public async Task ChatCompletion_MoreThanFourStopSequences_Is400ArrayAboveMaxLength()
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions",
            Json("""{"model":"mock","messages":[{"role":"user","content":"hi"}],"stop":["a","b","c","d","e"]}"""));

        await AssertRefusedAsync(response, "array_above_max_length", "stop");
    }

    [Fact]
    public async Task Embeddings_InputsOverTheDefault2048_Is400ArrayAboveMaxLength()
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        string Body(int inputs) => $$"""{"model":"mock","input":[{{string.Join(",", Enumerable.Range(0, inputs).Select(i => $"\"t{i}\""))}}]}""";

        var atLimit = await client.PostAsync("/v1/embeddings", Json(Body(2048)));
        var over = await client.PostAsync("/v1/embeddings", Json(Body(2049)));

        Assert.Equal(HttpStatusCode.OK, atLimit.StatusCode);
        await AssertRefusedAsync(over, "array_above_max_length", "input");
    }

    [Theory]
    [InlineData("/v1/chat/completions", """{"model":"mock","messages":[MESSAGES]}""", 3, 4, "messages")]
    [InlineData("/v1/chat/completions", """{"model":"mock","messages":[{"role":"user","content":"hi"}],"tools":[TOOLS]}""", 2, 3, "tools")]
    [InlineData("/v1/chat/completions", """{"model":"mock","messages":[{"role":"user","content":"hi"}],"stop":[STOPS]}""", 2, 3, "stop")]
    [InlineData("/v1/chat/completions", """{"model":"mock","messages":[{"role":"user","content":[PARTS]},{"role":"user","content":[PARTS]}]}""", 2, 3, "messages")]
    [InlineData("/v1/embeddings", """{"model":"mock","input":[INPUTS]}""", 3, 4, "input")]
    public async Task Limits_SetInConfiguration_AcceptTheLimitAndRefuseOneMore(string path, string template, int limit, int over, string param)
    {
        var (key, _) = await tight.Host.CreateKeyAsync();
        using var client = tight.Host.Client(key);
        string Body(int n) => template
            .Replace("MESSAGES", Messages(n), StringComparison.Ordinal)
            .Replace("TOOLS", string.Join(",", Enumerable.Range(0, n).Select(i => $$$"""{"type":"function","function":{"name":"f{{{i}}}"}}""")), StringComparison.Ordinal)
            .Replace("STOPS", string.Join(",", Enumerable.Range(0, n).Select(i => $"\"s{i}\"")), StringComparison.Ordinal)
            .Replace("PARTS", string.Join(",", Enumerable.Range(0, n).Select(i => $$"""{"type":"text","text":"p{{i}}"}""")), StringComparison.Ordinal)
            .Replace("INPUTS", string.Join(",", Enumerable.Range(0, n).Select(i => $"\"i{i}\"")), StringComparison.Ordinal);

        var accepted = await client.PostAsync(path, Json(Body(limit)));
        var refused = await client.PostAsync(path, Json(Body(over)));

        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        await AssertRefusedAsync(refused, "array_above_max_length", param);
    }

    [Fact]
    public async Task Headers_LargerThanTheDefault32KB_Are431()
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Json("""{"model":"mock","messages":[{"role":"user","content":"hi"}]}""") };
        request.Headers.Add("x-padding", new string('a', 40 * 1024));

        var response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead);

        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, response.StatusCode);
    }

    [Fact]
    public async Task Headers_OverTheConfiguredCountOrSize_Are431AndTheLineIs414()
    {
        var (key, _) = await tight.Host.CreateKeyAsync();
        using var client = tight.Host.Client(key);
        async Task<HttpStatusCode> SendAsync(Action<HttpRequestMessage> change, string path = "/v1/models")
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            change(request);
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead);
            return response.StatusCode;
        }

        var fine = await SendAsync(r => r.Headers.Add("x-padding", new string('a', 2000)));
        var tooMany = await SendAsync(r => { for (var i = 0; i < 25; i++) r.Headers.Add($"x-h{i}", "v"); });
        var tooBig = await SendAsync(r => r.Headers.Add("x-padding", new string('a', 5000)));
        var longLine = await SendAsync(_ => { }, "/v1/models?q=" + new string('a', 2000));

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.RequestHeaderFieldsTooLarge, HttpStatusCode.RequestHeaderFieldsTooLarge, HttpStatusCode.RequestUriTooLong),
            (fine, tooMany, tooBig, longLine));
    }

    [Fact]
    public async Task Headers_SentSlowerThanTheTimeout_ConnectionIsClosed()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(tight.Host.BaseAddress.Host, tight.Host.BaseAddress.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nx-slow: "u8.ToArray());

        // Never finish the headers; the server must give up on its own (1 s, checked once a second).
        var answer = await ReadUntilClosedAsync(stream, TimeSpan.FromSeconds(15));

        Assert.True(answer.Closed, "the server kept a connection open whose headers never ended");
        Assert.True(answer.Text.Length == 0 || answer.Text.StartsWith("HTTP/1.1 408", StringComparison.Ordinal), answer.Text);
    }

    [Fact]
    public async Task ChatBody_SentSlowerThanTheMinimumRate_IsCutWith408AndMetered()
    {
        var (key, keyId) = await tight.Host.CreateKeyAsync();
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(tight.Host.BaseAddress.Host, tight.Host.BaseAddress.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
            $"Authorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"));
        var reading = ReadUntilClosedAsync(stream, TimeSpan.FromSeconds(20));

        // Two bytes a second against a minimum of 100 after a 2 s grace period.
        var started = Environment.TickCount64;
        while (!reading.IsCompleted && Environment.TickCount64 - started < 15_000)
        {
            await Task.Delay(500);
            try
            {
                await stream.WriteAsync(" "u8.ToArray());
            }
            catch (IOException)
            {
                break;
            }
        }
        var answer = await reading;

        Assert.StartsWith("HTTP/1.1 408", answer.Text, StringComparison.Ordinal);
        Assert.Contains("\"code\":\"request_timeout\"", answer.Text, StringComparison.Ordinal);
        var rows = await Eventually.UntilAsync(() => env.UsageRowsForKeyAsync(keyId), r => r.Count > 0, pause: TimeSpan.FromMilliseconds(50));
        var row = Assert.Single(rows);
        Assert.Equal(((short)408, "request_timeout"), (row.Status, row.ErrorKind));
    }

    [Fact]
    public async Task Connection_IdleLongerThanTheKeepAliveTimeout_IsClosed()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(tight.Host.BaseAddress.Host, tight.Host.BaseAddress.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"u8.ToArray());

        var answer = await ReadUntilClosedAsync(stream, TimeSpan.FromSeconds(15));

        Assert.StartsWith("HTTP/1.1 ", answer.Text, StringComparison.Ordinal);
        Assert.True(answer.Closed, "an idle keep-alive connection stayed open past its 1 s timeout");
    }

    [Fact]
    public async Task RateLimit_MaxTokensNearIntMax_CountsAsHugeNotNegative()
    {
        var (key, _) = await Gateway.CreateKeyAsync(tpmLimit: 100_000);
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions",
            Json("""{"model":"mock","max_tokens":2147483647,"messages":[{"role":"user","content":"hi"}]}"""));

        var error = await ErrorAsync(response, HttpStatusCode.TooManyRequests);
        Assert.Equal(("rate_limit_exceeded", "tokens"), (error["code"]!.GetValue<string>(), error["type"]!.GetValue<string>()));
    }

    [Fact]
    public async Task HardCap_MaxTokensNearIntMaxTimesN_IsRefusedNotWrappedToANegativeWorstCase()
    {
        var (key, _) = await Gateway.CreateKeyFromJsonAsync("""{"name":"overflow","hard_cap_usd":1}""");
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions",
            Json("""{"model":"mock","max_tokens":2147483647,"n":2,"messages":[{"role":"user","content":"hi"}]}"""));

        var error = await ErrorAsync(response, HttpStatusCode.TooManyRequests);
        Assert.Equal("insufficient_quota", error["code"]!.GetValue<string>());
    }

    /// <summary>Reads what the server sends until it closes the connection (Closed) or the time is up.</summary>
    private static async Task<(string Text, bool Closed)> ReadUntilClosedAsync(NetworkStream stream, TimeSpan limit)
    {
        using var timeout = new CancellationTokenSource(limit);
        var received = new MemoryStream();
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                var read = await stream.ReadAsync(buffer, timeout.Token);
                if (read == 0) return (Encoding.UTF8.GetString(received.ToArray()), true);
                received.Write(buffer, 0, read);
            }
        }
        catch (OperationCanceledException)
        {
            return (Encoding.UTF8.GetString(received.ToArray()), false);
        }
        catch (IOException)
        {
            return (Encoding.UTF8.GetString(received.ToArray()), true); // reset by the server
        }
    }
}
