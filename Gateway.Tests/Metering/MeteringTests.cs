using System.Net;
using Dapper;
using Gateway.Core.Metering;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;

namespace Gateway.Tests.Metering;

public sealed class MeteringTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    [Theory]
    [InlineData("/v1/chat/completions", "openai.chat_completions")]
    [InlineData("/v1/messages", "anthropic.messages")]
    [InlineData("/v1/responses", "openai.responses")]
    public async Task Stream_ClientDisconnects_LeavesOneEstimatedUsageRecordAndCancelsUpstream_OnEveryFrontDoor(string door, string frontDoor)
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "slow-stream");
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");
        using var request = new HttpRequestMessage(HttpMethod.Post, door)
        {
            Content = Json(door switch
            {
                "/v1/messages" => $$"""{"model":"{{alias}}","max_tokens":500,"stream":true,"messages":[{"role":"user","content":"{{marker}}"}]}""",
                "/v1/responses" => $$"""{"model":"{{alias}}","stream":true,"store":false,"input":"{{marker}}"}""",
                _ => $$"""{"model":"{{alias}}","stream":true,"messages":[{"role":"user","content":"{{marker}}"}]}""",
            }),
        };

        Guid requestId;
        using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            requestId = Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single());
            await using var body = await response.Content.ReadAsStreamAsync();
            using var reader = new StreamReader(body);
            var contentChunks = 0;
            while (contentChunks < 3 && await reader.ReadLineAsync() is { } line)
                if (line.Contains("tick", StringComparison.Ordinal)) contentChunks++;
        } // disposing the response mid-stream closes the connection

        var row = await env.WaitForUsageAsync(requestId);
        Assert.Equal(((short)499, "client_disconnected", frontDoor), (row.Status, row.ErrorKind, row.FrontDoor));
        Assert.True(row.UsageEstimated);
        Assert.True(row.PromptTokens > 0 && row.CompletionTokens >= 3, $"{row.PromptTokens}/{row.CompletionTokens}");
        Assert.True(row.CostUsd > 0);
        await GatewayHost.WaitUntilAsync(() => env.Upstream.Find(marker)!.Aborted);
        await env.UsageWriterCaughtUpAsync(Gateway); // a second record would have been queued before this one's
        Assert.Single(await env.UsageRowsAsync(requestId));
    }

    [Theory]
    [InlineData("drop-mid-stream")]
    [InlineData("no-done")]
    public async Task ChatStream_UpstreamBreaksAfterTokens_EndsWithErrorEventThenDone(string upstreamModel)
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, upstreamModel);
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var response = await client.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"{{alias}}","stream":true,"messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode); // bytes were already sent
        var events = Api.ChatCompletionsTests.SseEvents(await response.Content.ReadAsStringAsync());
        Assert.Equal("[DONE]", events[^1]);
        Assert.Contains("\"error\":{", events[^2], StringComparison.Ordinal);
        Assert.Contains("\"code\":\"upstream_error\"", events[^2], StringComparison.Ordinal);
        Assert.Contains("Hello", string.Concat(events), StringComparison.Ordinal);

        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal(((short)502, "upstream_error", true), (row.Status, row.ErrorKind, row.UsageEstimated));
        Assert.True(row.CompletionTokens > 0);
    }

    [Fact]
    public async Task UsageWriter_SameRequestIdTwice_StoresOneRowAndCountsItOnce()
    {
        var channel = Gateway.Services.GetRequiredService<UsageChannel>();
        var keyId = Guid.NewGuid();
        var record = new UsageRecord
        {
            RequestId = Guid.NewGuid(), OccurredAt = TimeProvider.System.GetUtcNow(), KeyId = keyId, Day = new DateOnly(2026, 11, 24),
            AskedModel = "mock", PromptTokens = 10, CompletionTokens = 20, CostUsd = 0.00005m, Status = 200, LatencyMs = 3,
        };

        await channel.PublishAsync(record);
        await env.WaitForUsageAsync(record.RequestId);
        await channel.PublishAsync(record);
        var marker = new UsageRecord { RequestId = Guid.NewGuid(), OccurredAt = record.OccurredAt, KeyId = keyId, Day = record.Day, Status = 200 };
        await channel.PublishAsync(marker); // written after the replay, so once it is in, the replay was handled
        await env.WaitForUsageAsync(marker.RequestId);

        Assert.Single(await env.UsageRowsAsync(record.RequestId));
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        var daily = await db.QuerySingleAsync<(long Requests, long Prompt, decimal Cost)>(
            "SELECT requests, prompt_tokens, cost_usd FROM usage_daily WHERE key_id = @keyId", new { keyId });
        Assert.Equal((2L, 10L, 0.00005m), daily);
    }

    [Fact]
    public async Task UsageDaily_AgreesWithTheSumOfUsageEvents()
    {
        var (key, keyId) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var ids = new List<Guid>();
        for (var i = 0; i < 5; i++)
        {
            var response = await client.PostAsync("/v1/chat/completions",
                Json(i == 4 ? "{bad json" : $$"""{"model":"mock","messages":[{"role":"user","content":"question {{i}}"}]}"""));
            ids.Add(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        }
        foreach (var id in ids) await env.WaitForUsageAsync(id);

        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        var fromEvents = await db.QuerySingleAsync<(long, long, long, decimal)>(
            "SELECT count(*), count(*) FILTER (WHERE status >= 400), sum(prompt_tokens), sum(cost_usd) FROM usage_events WHERE key_id = @keyId", new { keyId });
        var fromDaily = await db.QuerySingleAsync<(long, long, long, decimal)>(
            "SELECT sum(requests)::bigint, sum(errors)::bigint, sum(prompt_tokens)::bigint, sum(cost_usd) FROM usage_daily WHERE key_id = @keyId", new { keyId });
        Assert.Equal(fromEvents, fromDaily);
        Assert.Equal(5L, fromEvents.Item1);
        Assert.Equal(1L, fromEvents.Item2);
    }

    [Fact]
    public async Task Shutdown_WhileRequestsAreInFlight_StoresEveryOneOfTheirRecords()
    {
        var host = new GatewayHost(env.Postgres.ConnectionString);
        var alias = await host.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", timeoutMs: 120_000); // held as long as it takes
        var (key, keyId) = await host.CreateKeyAsync();
        using var client = host.Client(key);
        var marker = Guid.NewGuid().ToString("N");
        env.Upstream.Hold(marker); // the upstream answers them only once the host is stopping
        host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.Register(() => env.Upstream.Release(marker));
        var inFlight = Enumerable.Range(0, 30).Select(i => client.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"{{marker}} n{{i}}"}]}"""))).ToList();
        await Eventually.TrueAsync(() => env.Upstream.Requests.Count(r => r.Body.Contains(marker, StringComparison.Ordinal)) == 30,
            what: "30 requests waiting at the upstream");

        await host.DisposeAsync(); // SIGTERM-like: drain requests, then flush metering

        var responses = await Task.WhenAll(inFlight);
        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        var ids = responses.Select(r => Guid.Parse(r.Headers.GetValues("x-gateway-request-id").Single())).Order();
        Assert.Equal(ids, (await env.UsageRowsForKeyAsync(keyId)).Select(r => r.RequestId).Order());
    }

    [Fact]
    public async Task ChatCompletion_NulCharactersInTextFields_AreStillMeteredAndDoNotBlockOthers()
    {
        var (key, keyId) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        var bad = await client.PostAsync("/v1/chat/completions", Json("""{"model":"mock","user":"a\u0000b","messages":[{"role":"user","content":"hi"}]}"""));
        var unknown = await client.PostAsync("/v1/chat/completions", Json("""{"model":"gpt\u0000x","messages":[{"role":"user","content":"hi"}]}"""));
        var good = await client.PostAsync("/v1/chat/completions", Json("""{"model":"mock","messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.NotFound, HttpStatusCode.OK), (bad.StatusCode, unknown.StatusCode, good.StatusCode));
        var row = await env.WaitForUsageAsync(Guid.Parse(bad.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal("a\uFFFDb", row.EndUser);
        await env.WaitForUsageAsync(Guid.Parse(unknown.Headers.GetValues("x-gateway-request-id").Single()));
        await env.WaitForUsageAsync(Guid.Parse(good.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal(3, (await env.UsageRowsForKeyAsync(keyId)).Count);
    }

    [Fact]
    public async Task UsageEvents_ArePartitionedByDay()
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var response = await client.PostAsync("/v1/chat/completions", Json("""{"model":"mock","messages":[{"role":"user","content":"hi"}]}"""));
        var requestId = Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single());
        await env.WaitForUsageAsync(requestId);

        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        var row = await db.QuerySingleAsync<(string Partition, DateTime OccurredAt)>(
            "SELECT tableoid::regclass::text, occurred_at FROM usage_events WHERE request_id = @requestId", new { requestId });
        Assert.Equal("usage_events_" + row.OccurredAt.ToUniversalTime().ToString("yyyyMMdd", System.Globalization.CultureInfo.InvariantCulture), row.Partition);
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task Journal_IsReadableOnlyByTheGateway()
    {
        var dir = Path.Combine(Path.GetTempPath(), "gw-journal-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            await using var host = new GatewayHost(env.Postgres.ConnectionString, new() { ["Gateway:Metering:JournalDirectory"] = dir });
            var (key, _) = await host.CreateKeyAsync();
            using var client = host.Client(key);
            (await client.PostAsync("/v1/chat/completions", Json("""{"model":"mock","user":"end-user-7","messages":[{"role":"user","content":"hi"}]}"""))).EnsureSuccessStatusCode();

            var files = Directory.GetFiles(dir, "usage-*.jsonl");
            Assert.NotEmpty(files); // the current file stays until it is rotated
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(dir));
            Assert.All(files, f => Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(f)));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}
