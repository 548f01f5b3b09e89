using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Api;

/// <summary>Metrics at /metrics, spans, OTLP export and log scopes: what they carry, and that no key, secret, user or prompt is among it.</summary>
public sealed class ObservabilityTests(TestEnvironment env)
{
    private const string UpstreamSecret = "sk-fake-upstream-secret"; // GatewayHost.AddModelAsync's default provider secret

    private GatewayHost Gateway => env.Gateway;

    private static string Marker() => "prompt-" + Guid.NewGuid().ToString("N");

    private static Guid RequestId(HttpResponseMessage response) => Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single());

    private static string Provider(string alias) => alias.Split('/')[0];

    /// <summary>A key with a budget: over its (tiny) daily budget it is sent to <paramref name="downgradeModel"/>.</summary>
    private static async Task<string> ThriftyKeyAsync(GatewayHost host, string downgradeModel)
    {
        // The hard cap makes the day's spend exact on this instance, so the request after the first is downgraded.
        var created = await host.CreateKeyFromJsonAsync($$"""
            {"name":"thrifty-{{Guid.NewGuid():N}}","daily_budget_usd":0.00001,"hard_cap_usd":1,"downgrade_model":"{{downgradeModel}}"}
            """);
        return created.Key;
    }

    /// <summary>The sample lines of one Prometheus series family (e.g. <c>gateway_requests_total</c>) that carry every given label.</summary>
    private static List<string> Samples(string exposition, string name, params string[] labels) =>
        [.. exposition.Split('\n').Where(line => line.StartsWith(name + "{", StringComparison.Ordinal)
            && labels.All(label => line.Contains(label, StringComparison.Ordinal)))];

    private static void AssertNothingSecret(string text, params string[] secrets)
    {
        foreach (var secret in secrets) Assert.DoesNotContain(secret, text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_AfterAFallbackADowngradeAndAStream_ShowEachSeriesWithItsLabelsAndNothingSecret()
    {
        var fallback = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var primary = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "status-503", fallbacks: [fallback]);
        var cheap = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", inputPrice: 0.1m, outputPrice: 0.2m, cachedPrice: 0.05m);
        var (key, _) = await Gateway.CreateKeyAsync();
        var thrifty = await ThriftyKeyAsync(Gateway, cheap);
        var marker = Marker();
        var user = "user-" + Guid.NewGuid().ToString("N");
        using var client = Gateway.Client(key);
        using var thriftyClient = Gateway.Client(thrifty);

        var fellBack = await client.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"{{primary}}","user":"{{user}}","messages":[{"role":"user","content":"{{marker}}"}]}"""));
        var streamed = await client.PostAsync("/v1/chat/completions", Json($$"""
            {"model":"{{fallback}}","stream":true,"stream_options":{"include_usage":true},"user":"{{user}}","messages":[{"role":"user","content":"{{marker}}"}]}
            """));
        await streamed.Content.ReadAsStringAsync();
        var answers = new List<HttpResponseMessage>();
        do answers.Add(await thriftyClient.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"mock","max_tokens":30,"messages":[{"role":"user","content":"{{marker}}"}]}""")));
        while (!answers[^1].Headers.Contains("x-gateway-downgraded-from") && answers.Count < 5);
        foreach (var response in answers.Append(fellBack).Append(streamed)) await env.WaitForUsageAsync(RequestId(response)); // flushed

        using var scraper = Gateway.Client();
        // The exporter caches a scrape briefly and other tests scrape this host too: read until this test's series are in.
        var metrics = await scraper.GetStringAsync("/metrics");
        for (var deadline = Environment.TickCount64 + 30_000; Environment.TickCount64 < deadline
             && (Samples(metrics, "gateway_budget_downgrades_total", $"gateway_model_to=\"{cheap}\"").Count == 0
                 || Samples(metrics, "gateway_fallbacks_total", $"gateway_model_from=\"{primary}\"").Count == 0); await Task.Delay(200))
            metrics = await scraper.GetStringAsync("/metrics");

        Assert.Equal("true", fellBack.Headers.GetValues("x-gateway-fallback").Single());
        Assert.Equal("mock", answers[^1].Headers.GetValues("x-gateway-downgraded-from").Single());
        Assert.Single(Samples(metrics, "gateway_fallbacks_total", $"gateway_model_from=\"{primary}\"", $"gateway_model_to=\"{fallback}\""));
        Assert.Single(Samples(metrics, "gateway_budget_downgrades_total", "gateway_model_from=\"mock\"", $"gateway_model_to=\"{cheap}\""));
        // Each provider call: the failed one says why, the one that served names the model that answered.
        Assert.Single(Samples(metrics, "gen_ai_client_operation_duration_seconds_count", $"gateway_provider=\"{Provider(primary)}\"",
            "error_type=\"overloaded\"", "gen_ai_operation_name=\"chat\"", "gen_ai_provider_name=\"openai\"", "gen_ai_request_model=\"status-503\""));
        Assert.NotEmpty(Samples(metrics, "gen_ai_client_operation_duration_seconds_count", $"gateway_provider=\"{Provider(fallback)}\"",
            "gen_ai_request_model=\"gpt-4o-mini\"", "gen_ai_response_model=\"gpt-4o-mini-2024-07-18\""));
        Assert.DoesNotContain(Samples(metrics, "gen_ai_client_operation_duration_seconds_count", $"gateway_provider=\"{Provider(fallback)}\""),
            line => line.Contains("error_type", StringComparison.Ordinal));
        Assert.Single(Samples(metrics, "gen_ai_client_operation_time_to_first_chunk_seconds_count", $"gateway_provider=\"{Provider(fallback)}\"",
            "gen_ai_operation_name=\"chat\""));
        Assert.Empty(Samples(metrics, "gen_ai_client_operation_time_to_first_chunk_seconds_count", $"gateway_provider=\"{Provider(primary)}\""));
        Assert.NotEmpty(Samples(metrics, "gen_ai_client_token_usage_count", $"gateway_provider=\"{Provider(fallback)}\"", "gen_ai_token_type=\"output\""));
        Assert.NotEmpty(Samples(metrics, "gen_ai_client_token_usage_bucket", $"gateway_provider=\"{Provider(fallback)}\"", "le=\"16\""));
        Assert.Single(Samples(metrics, "gateway_requests_total", $"gateway_provider=\"{Provider(fallback)}\"", "http_response_status_code=\"200\"",
            "gen_ai_operation_name=\"chat\""));
        Assert.NotEmpty(Samples(metrics, "gateway_metering_flush_duration_seconds_count"));
        Assert.Contains(metrics.Split('\n'), line => line.StartsWith("gateway_metering_rows_written_total", StringComparison.Ordinal));
        Assert.Contains(metrics.Split('\n'), line => line.StartsWith("gateway_metering_queue_depth", StringComparison.Ordinal));
        Assert.Contains(metrics.Split('\n'), line => line.StartsWith("gateway_metering_journal_size", StringComparison.Ordinal));
        AssertNothingSecret(metrics, key, key[..11], thrifty, UpstreamSecret, marker, user);
    }

    [Fact]
    public async Task Trace_OfARequestThatFellBack_HasOneServerSpanAndAGenAiClientSpanPerProviderCall_WithoutKeysOrPrompts()
    {
        var gemini = await Gateway.AddModelAsync(env.Gemini.BaseUrl, "gemini-2.5-flash", protocol: "gemini", secret: FakeGemini.ApiKey);
        var primary = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "status-503", fallbacks: [gemini]);
        var (key, _) = await Gateway.CreateKeyAsync();
        var marker = Marker();
        using var client = Gateway.Client(key);
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is "LlmGateway" or "Microsoft.AspNetCore" or "System.Net.Http",
            // Not the test's own HttpClient: the gateway's server span is then the root of the request's trace.
            Sample = (ref ActivityCreationOptions<ActivityContext> o) => o.Source.Name == "System.Net.Http" && o.Parent == default
                ? ActivitySamplingResult.None
                : ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);

        var response = await client.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"{{primary}}","messages":[{"role":"user","content":"{{marker}}"}]}"""));
        var requestId = RequestId(response).ToString();
        Activity? server = null;
        await GatewayHost.WaitUntilAsync(() =>
        {
            var request = spans.FirstOrDefault(s => s.Source.Name == "LlmGateway" && (s.GetTagItem("gateway.request.id") as string) == requestId);
            server = request is null ? null : spans.FirstOrDefault(s => s.SpanId == request.ParentSpanId);
            return server is not null;
        });
        var trace = spans.Where(s => s.TraceId == server!.TraceId).ToList();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(ActivityKind.Server, server!.Kind);
        Assert.Equal("Microsoft.AspNetCore", server.Source.Name);
        Assert.Equal([server], trace.Where(s => s.ParentSpanId == default)); // one server span per request, the trace's root
        var request = Assert.Single(trace, s => s.Source.Name == "LlmGateway" && s.Kind == ActivityKind.Internal);
        Assert.Equal(("gateway chat", "chat", primary, true, 200), (request.DisplayName, request.GetTagItem("gen_ai.operation.name"),
            request.GetTagItem("gen_ai.request.model"), request.GetTagItem("gateway.fallback"), request.GetTagItem("http.response.status_code")));
        var calls = trace.Where(s => s.Source.Name == "LlmGateway" && s.Kind == ActivityKind.Client).OrderBy(s => s.StartTimeUtc).ToList();
        Assert.Equal(["chat status-503", "chat gemini-2.5-flash"], calls.Select(c => c.DisplayName));
        Assert.All(calls, c => Assert.Equal(request.SpanId, c.ParentSpanId));
        Assert.All(calls, c => Assert.Equal("chat", c.GetTagItem("gen_ai.operation.name")));
        Assert.Equal(("openai", "status-503", "overloaded", ActivityStatusCode.Error), (calls[0].GetTagItem("gen_ai.provider.name"),
            calls[0].GetTagItem("gen_ai.request.model"), calls[0].GetTagItem("error.type"), calls[0].Status));
        Assert.Equal(("gcp.gemini", "gemini-2.5-flash", "gemini-2.5-flash-001", false), (calls[1].GetTagItem("gen_ai.provider.name"),
            calls[1].GetTagItem("gen_ai.request.model"), calls[1].GetTagItem("gen_ai.response.model"), calls[1].GetTagItem("gen_ai.request.stream")));
        Assert.Null(calls[1].GetTagItem("error.type"));
        Assert.True(calls[1].GetTagItem("gen_ai.usage.input_tokens") is int input && input > 0);
        Assert.True(calls[1].GetTagItem("gen_ai.usage.output_tokens") is int output && output > 0);
        Assert.Equal(["stop"], (string[])calls[1].GetTagItem("gen_ai.response.finish_reasons")!);
        Assert.Equal(Provider(gemini), calls[1].GetTagItem("gateway.provider"));
        // Each call's HTTP span sits under it; Gemini's key travels in a header, never in url.full.
        var http = trace.Where(s => s.Source.Name == "System.Net.Http").ToList();
        Assert.Equal(calls.Select(c => c.SpanId), http.OrderBy(h => h.StartTimeUtc).Select(h => h.ParentSpanId));
        Assert.Contains(http, h => (h.GetTagItem("url.full") as string)?.Contains(":streamGenerateContent", StringComparison.Ordinal) == true);
        var everything = string.Join('\n', trace.SelectMany(s => s.TagObjects.Select(t => $"{s.DisplayName} {t.Key}={Text(t.Value)}")
            .Concat(s.Events.SelectMany(e => e.Tags.Select(t => $"{e.Name} {t.Key}={Text(t.Value)}")))));
        AssertNothingSecret(everything, key, key[..11], FakeGemini.ApiKey, UpstreamSecret, marker);
    }

    private static string? Text(object? value) => value is string[] many ? string.Join(',', many) : value?.ToString();

    [Fact]
    public async Task Logs_WrittenWhileARequestIsHandled_CarryItsRequestIdAndKeyPrefixInScope()
    {
        var logs = new CapturingLoggerProvider();
        // Body logging is what writes lines while a request is handled (redacted); HttpClient's per-call lines are asked for
        // too, and must not come: the gateway's provider client has none.
        await using var host = new GatewayHost(env.Postgres.ConnectionString,
            new() { ["Gateway:LogBodies"] = "true", ["Logging:LogLevel:Default"] = "Information", ["Logging:LogLevel:System.Net.Http.HttpClient"] = "Information" },
            services: s => s.AddSingleton<ILoggerProvider>(logs));
        var alias = await host.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var (key, _) = await host.CreateKeyAsync();
        using var client = host.Client(key);

        var response = await client.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"Say hello"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var requestId = RequestId(response).ToString();
        var bodies = logs.Entries.Where(e => e.Category == global::Gateway.Core.Logging.BodyLog.Category).ToList();
        Assert.Equal(2, bodies.Count); // the prompt and the answer
        Assert.All(bodies, e => Assert.Contains(new KeyValuePair<string, object?>("RequestId", requestId), e.Scope));
        Assert.All(bodies, e => Assert.Contains(new KeyValuePair<string, object?>("KeyPrefix", key[..11]), e.Scope));
        Assert.DoesNotContain(logs.Entries, e => e.Category.StartsWith("System.Net.Http.HttpClient", StringComparison.Ordinal));
        var everything = string.Join('\n', logs.Entries.Select(e => e.Message + " " + string.Join(' ', e.Scope.Select(kv => $"{kv.Key}={kv.Value}"))));
        AssertNothingSecret(everything, key, UpstreamSecret);
    }

    [Fact]
    public async Task Otlp_EndpointConfigured_ExportsTracesAndMetricsWithoutKeysOrPrompts()
    {
        await using var collector = await FakeOtlpCollector.StartAsync();
        var host = new GatewayHost(env.Postgres.ConnectionString,
            new()
            {
                ["Gateway:Otlp:Endpoint"] = collector.BaseUrl, ["Gateway:Otlp:Protocol"] = "http/protobuf",
                // The SDK's own settings, read from configuration like the environment: export often, not every 5 s and 60 s.
                ["OTEL_BSP_SCHEDULE_DELAY"] = "100", ["OTEL_METRIC_EXPORT_INTERVAL"] = "200",
            });
        var key = "";
        var marker = Marker();
        try
        {
            var alias = await host.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
            (key, _) = await host.CreateKeyAsync();
            using var client = host.Client(key);
            var response = await client.PostAsync("/v1/chat/completions",
                Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"{{marker}}"}]}"""));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await env.WaitForUsageAsync(RequestId(response));
            await GatewayHost.WaitUntilAsync(() => collector.Received("/v1/traces").Contains("gen_ai.operation.name", StringComparison.Ordinal)
                && collector.Received("/v1/metrics").Contains("gen_ai.client.operation.duration", StringComparison.Ordinal), 10_000);
        }
        finally
        {
            await host.DisposeAsync(); // shutting down exports what is left of both signals
        }

        var traces = collector.Received("/v1/traces");
        var metrics = collector.Received("/v1/metrics");
        Assert.Contains("LlmGateway", traces, StringComparison.Ordinal);
        Assert.Contains("gen_ai.operation.name", traces, StringComparison.Ordinal);
        Assert.Contains("gen_ai.usage.output_tokens", traces, StringComparison.Ordinal);
        Assert.Contains("gen_ai.client.operation.duration", metrics, StringComparison.Ordinal);
        Assert.Contains("gateway.requests", metrics, StringComparison.Ordinal);
        AssertNothingSecret(traces + metrics, key, key[..11], UpstreamSecret, marker);
    }

    /// <summary>Keeps every log entry with the scopes it was written in.</summary>
    private sealed class CapturingLoggerProvider : ILoggerProvider, ISupportExternalScope
    {
        private IExternalScopeProvider? _scopes;

        public ConcurrentQueue<(string Category, string Message, List<KeyValuePair<string, object?>> Scope)> Entries { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

        public void Dispose()
        {
        }

        private sealed class Logger(CapturingLoggerProvider provider, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => provider._scopes?.Push(state);

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                var scope = new List<KeyValuePair<string, object?>>();
                provider._scopes?.ForEachScope((s, list) =>
                {
                    if (s is IEnumerable<KeyValuePair<string, object?>> pairs) list.AddRange(pairs);
                }, scope);
                provider.Entries.Enqueue((category, formatter(state, exception), scope));
            }
        }
    }
}
