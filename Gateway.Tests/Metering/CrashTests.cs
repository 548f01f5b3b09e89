using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Dapper;
using Gateway.Tests.Fixtures;
using Npgsql;

namespace Gateway.Tests.Metering;

/// <summary>The gateway as its own process, killed with SIGKILL under load: the next start replays its journal.</summary>
[Collection(HeavyTests.Name)]
public sealed class CrashTests(TestEnvironment env) : IAsyncDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "gw-crash-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly List<Process> _started = [];

    /// <param name="connectionString">The run's database when null.</param>
    /// <param name="settings">Further settings, as environment variables (<c>Section__Key</c>).</param>
    private async Task<(Process Process, Uri Url)> StartGatewayAsync(string? connectionString = null, Dictionary<string, string>? settings = null)
    {
        var port = PostgresFixture.FreePort();
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = AppContext.BaseDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Gateway.Api.dll"));
        start.Environment["ConnectionStrings__Gateway"] = connectionString ?? env.Postgres.ConnectionString;
        start.Environment["Gateway__MasterKey"] = GatewayHost.MasterKey;
        start.Environment["Gateway__SeedFile"] = "";
        start.Environment["Gateway__DataProtectionKeysDirectory"] = Path.Combine(_dir, "keys");
        start.Environment["Gateway__Metering__JournalDirectory"] = Path.Combine(_dir, "journal");
        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        foreach (var (name, value) in settings ?? []) start.Environment[name] = value;
        var process = Process.Start(start)!;
        _started.Add(process);
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var url = new Uri($"http://127.0.0.1:{port}");
        using var probe = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Environment.TickCount64 + 60_000;
        while (true)
        {
            try
            {
                if ((await probe.GetAsync("/health/ready")).IsSuccessStatusCode) return (process, url);
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }
            Assert.False(process.HasExited, "the gateway process exited");
            Assert.True(Environment.TickCount64 < deadline, "the gateway did not become ready");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task GatewayKilledUnderLoad_NextStartReplaysItsJournal_EveryAnsweredRequestHasExactlyOneRow()
    {
        var (first, url) = await StartGatewayAsync();
        using var admin = new HttpClient { BaseAddress = url };
        admin.DefaultRequestHeaders.Authorization = new("Bearer", GatewayHost.MasterKey);
        var created = (await (await admin.PostAsJsonAsync("/admin/keys", new JsonObject { ["name"] = "crash" })).Content.ReadFromJsonAsync<JsonObject>())!;
        var keyId = created["id"]!.GetValue<Guid>();
        using var client = new HttpClient { BaseAddress = url };
        client.DefaultRequestHeaders.Authorization = new("Bearer", created["key"]!.GetValue<string>());
        await GatewayHost.WaitUntilServedAsync(client, "mock");
        var answered = new ConcurrentBag<Guid>();
        var killed = 0;

        var load = Task.WhenAll(Enumerable.Range(0, 8).Select(async worker =>
        {
            for (var i = 0; Volatile.Read(ref killed) == 0; i++)
            {
                try
                {
                    using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
                        $$"""{"model":"mock","messages":[{"role":"user","content":"w{{worker}} q{{i}}"}]}""", Encoding.UTF8, "application/json"));
                    var body = await response.Content.ReadAsStringAsync(); // the whole answer reached the client
                    if (response.StatusCode == HttpStatusCode.OK && body.EndsWith('}'))
                        answered.Add(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
                }
                catch (HttpRequestException)
                {
                    // cut by the kill: not answered
                }
            }
        }));
        // Under load: some answers are through (not a guessed time); returns at the bound either way, so the load stops.
        await Eventually.UntilAsync(() => Task.FromResult(answered.Count), n => n >= 20);
        first.Kill(); // SIGKILL: no shutdown, no final flush
        Volatile.Write(ref killed, 1);
        await first.WaitForExitAsync();
        await load;
        Assert.NotEmpty(answered);

        var (second, _) = await StartGatewayAsync();
        var rows = new List<Guid>();
        var deadline = Environment.TickCount64 + 30_000;
        while (Environment.TickCount64 < deadline)
        {
            await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
            rows = (await db.QueryAsync<Guid>("SELECT request_id FROM usage_events WHERE key_id = @keyId", new { keyId })).AsList();
            if (answered.All(rows.Contains)) break;
            await Task.Delay(200);
        }

        Assert.All(answered, id => Assert.Contains(id, rows));
        Assert.Equal(rows.Count, rows.Distinct().Count());
        second.Kill();
    }

    [Fact]
    public async Task GatewayKilledWithStreamsAndCallsInFlight_NextStartLeavesExactlyOneRowPerRequest()
    {
        var (first, url) = await StartGatewayAsync();
        using var admin = new HttpClient { BaseAddress = url };
        admin.DefaultRequestHeaders.Authorization = new("Bearer", GatewayHost.MasterKey);
        var created = (await (await admin.PostAsJsonAsync("/admin/keys", new JsonObject { ["name"] = "in-flight" })).Content.ReadFromJsonAsync<JsonObject>())!;
        var keyId = created["id"]!.GetValue<Guid>();
        // Streams that began and never end, and non-streamed calls never answered: all in flight at the kill.
        var provider = "inflight-" + Guid.NewGuid().ToString("N")[..8];
        (await admin.PostAsJsonAsync("/admin/providers", new JsonObject
        {
            ["name"] = provider, ["protocol"] = "openai", ["base_url"] = env.Upstream.BaseUrl, ["secret"] = "sk-fake-upstream-secret",
        })).EnsureSuccessStatusCode();
        foreach (var model in new[] { "stall-after-first", "hang" })
            (await admin.PostAsJsonAsync("/admin/models", new JsonObject
            {
                ["alias"] = $"{provider}/{model}", ["provider"] = provider, ["upstream_model"] = model, ["input_price_per_mtok"] = 1, ["output_price_per_mtok"] = 4,
                ["ttft_timeout_ms"] = 600_000,
            })).EnsureSuccessStatusCode();
        using var client = new HttpClient { BaseAddress = url, Timeout = Timeout.InfiniteTimeSpan };
        client.DefaultRequestHeaders.Authorization = new("Bearer", created["key"]!.GetValue<string>());
        await GatewayHost.WaitUntilServedAsync(client, $"{provider}/stall-after-first", $"{provider}/hang");
        var marker = Guid.NewGuid().ToString("N");

        var seen = new List<Guid>(); // request ids the streaming clients saw, with the first words of their answers
        var open = new List<HttpResponseMessage>();
        for (var i = 0; i < 20; i++)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = new StringContent($$"""{"model":"{{provider}}/stall-after-first","stream":true,"messages":[{"role":"user","content":"{{marker}} s{{i}}"}]}""",
                    Encoding.UTF8, "application/json"),
            };
            var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            open.Add(response);
            var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            while (await reader.ReadLineAsync() is { } line && !line.Contains("Hello", StringComparison.Ordinal)) { }
            seen.Add(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        }
        var calls = Enumerable.Range(0, 20).Select(i => Task.Run(async () =>
        {
            try
            {
                using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
                    $$"""{"model":"{{provider}}/hang","messages":[{"role":"user","content":"{{marker}} c{{i}}"}]}""", Encoding.UTF8, "application/json"));
            }
            catch (HttpRequestException)
            {
                // cut by the kill
            }
        })).ToList();
        await Eventually.TrueAsync(() => env.Upstream.Requests.Count(r => r.Body.Contains(marker, StringComparison.Ordinal)) == 40,
            what: "all 40 requests at the upstream");

        first.Kill(); // SIGKILL: no request ends, nothing is flushed
        await first.WaitForExitAsync();
        await Task.WhenAll(calls);
        foreach (var response in open) response.Dispose();
        await StartGatewayAsync();

        var rows = await Eventually.UntilAsync(async () =>
        {
            await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
            return (await db.QueryAsync<(Guid Id, short Status, string? Kind, bool Streamed, bool Estimated, int Prompt, decimal Cost)>(
                "SELECT request_id, status, error_kind, streamed, usage_estimated, prompt_tokens, cost_usd FROM usage_events WHERE key_id = @keyId",
                new { keyId })).AsList();
        }, found => found.Count >= 40);
        Assert.Equal(40, rows.Count); // one per request, none twice
        Assert.Equal(40, rows.Select(r => r.Id).Distinct().Count());
        Assert.All(seen, id => Assert.Contains(rows, r => r.Id == id && r.Streamed));
        Assert.All(rows, r => Assert.Equal(((short)500, "interrupted", true), (r.Status, r.Kind, r.Estimated)));
        Assert.All(rows, r => Assert.True(r.Prompt > 0 && r.Cost > 0, "the prompt the provider was sent is charged"));
        Assert.Equal(20, rows.Count(r => !r.Streamed));
    }

    /// <summary>
    /// Issue 15's money test: one capped key used through two instances at once (this process's host and a gateway process) with
    /// streamed and non-streamed requests, both output-limit fields, a huge max_tokens, n = 2, client aborts, failovers after
    /// billed partial answers (calls and streams), and a kill -9 of the process with streams open; then its restart.
    /// </summary>
    [Fact]
    public async Task TwoInstancesMixedMoneyLoad_WithAKill_SpendWithinTheCap_OneRowPerSeenRequest_AndTheBooksAgree()
    {
        const decimal cap = 0.05m;
        var gateway = env.Gateway;
        // Models every instance can serve (their secret in the environment, which the process inherits).
        var fallback = await gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", inputPrice: 1m, outputPrice: 10m, cachedPrice: 0.5m, everyHost: true);
        var breaking = await gateway.AddModelAsync(env.Upstream.BaseUrl, "drop-mid-stream", inputPrice: 1m, outputPrice: 10m, cachedPrice: 0.5m,
            fallbacks: [fallback], everyHost: true);
        var slow = await gateway.AddModelAsync(env.Upstream.BaseUrl, "slow-stream", inputPrice: 1m, outputPrice: 10m, cachedPrice: 0.5m, everyHost: true);
        var stalling = await gateway.AddModelAsync(env.Upstream.BaseUrl, "stall-after-first", inputPrice: 1m, outputPrice: 10m, cachedPrice: 0.5m,
            everyHost: true);
        var (key, keyId) = await gateway.CreateKeyAsync(hardCapUsd: cap);
        var (process, url) = await StartGatewayAsync();

        var seen = new ConcurrentBag<Guid>(); // every request id a client saw in a response's headers
        var stop = new CancellationTokenSource();
        async Task WorkAsync(Uri baseAddress, int worker)
        {
            using var client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(60) };
            client.DefaultRequestHeaders.Authorization = new("Bearer", key);
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                var (model, stream, extra) = ((worker + i) % 6) switch
                {
                    0 => (breaking, false, "\"max_tokens\":40,\"max_completion_tokens\":5"),
                    1 => (breaking, true, "\"max_completion_tokens\":40"),
                    2 => (fallback, false, "\"max_tokens\":100000"),
                    3 => (slow, true, "\"max_tokens\":300"),
                    4 => (fallback, false, "\"n\":2,\"max_tokens\":30"),
                    _ => (fallback, true, "\"max_tokens\":30,\"stream_options\":{\"include_usage\":true}"),
                };
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
                {
                    Content = new StringContent($$"""{"model":"{{model}}","stream":{{(stream ? "true" : "false")}},{{extra}},"messages":[{"role":"user","content":"m{{worker}} {{i}}"}]}""",
                        Encoding.UTF8, "application/json"),
                };
                try
                {
                    using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                    if (response.Headers.TryGetValues("x-gateway-request-id", out var ids)) seen.Add(Guid.Parse(ids.Single()));
                    await using var body = await response.Content.ReadAsStreamAsync();
                    using var reader = new StreamReader(body);
                    var lines = 0;
                    while (await reader.ReadLineAsync() is not null)
                        if (model == slow && ++lines == 4) break; // the client walks away mid-stream
                }
                catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException)
                {
                    // the process was killed under it
                }
            }
        }
        var load = Enumerable.Range(0, 4).Select(w => WorkAsync(url, w)).Concat(Enumerable.Range(4, 4).Select(w => WorkAsync(gateway.BaseAddress, w))).ToList();
        await Eventually.UntilAsync(() => Task.FromResult(seen.Count), n => n >= 60); // under load on both (returns at the bound either way)

        // Streams open mid-answer on the process when it dies.
        using var open = new HttpClient { BaseAddress = url, Timeout = Timeout.InfiniteTimeSpan };
        open.DefaultRequestHeaders.Authorization = new("Bearer", key);
        var cut = new List<HttpResponseMessage>();
        for (var i = 0; i < 3; i++)
        {
            var response = await open.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = new StringContent($$"""{"model":"{{stalling}}","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"cut {{i}}"}]}""",
                    Encoding.UTF8, "application/json"),
            }, HttpCompletionOption.ResponseHeadersRead);
            cut.Add(response);
            if (response.Headers.TryGetValues("x-gateway-request-id", out var ids)) seen.Add(Guid.Parse(ids.Single()));
        }
        process.Kill(); // SIGKILL
        await process.WaitForExitAsync();
        await stop.CancelAsync();
        await Task.WhenAll(load);
        foreach (var response in cut) response.Dispose();
        await StartGatewayAsync(); // replays the dead process's journal

        var expected = seen.Distinct().ToHashSet();
        var rows = await Eventually.UntilAsync(async () =>
        {
            await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
            return (await db.QueryAsync<(Guid Id, decimal Cost, Guid? Lease)>(
                "SELECT request_id, cost_usd, lease_id FROM usage_events WHERE key_id = @keyId", new { keyId })).AsList();
        }, found => expected.All(id => found.Any(r => r.Id == id)));
        await using var check = new NpgsqlConnection(env.Postgres.ConnectionString);
        var daily = await check.ExecuteScalarAsync<decimal>("SELECT coalesce(sum(cost_usd), 0) FROM usage_daily WHERE key_id = @keyId", new { keyId });
        var consumed = await check.ExecuteScalarAsync<decimal>("SELECT coalesce(sum(consumed), 0) FROM budget_leases WHERE key_id = @keyId", new { keyId });

        Assert.All(expected, id => Assert.Single(rows, r => r.Id == id)); // every request id a client saw: exactly one row
        Assert.Equal(rows.Count, rows.Select(r => r.Id).Distinct().Count());
        var spent = rows.Sum(r => r.Cost);
        Assert.True(spent is > 0 and <= cap, $"spent {spent} on a {cap} cap");
        Assert.Equal(spent, daily); // usage_daily is the sum of the rows
        Assert.Equal(rows.Where(r => r.Lease is not null).Sum(r => r.Cost), consumed); // the leases settled to the spend
        Assert.Equal(0m, rows.Where(r => r.Lease is null).Sum(r => r.Cost));
    }

    [Fact]
    public async Task GatewaySigtermedUnderLoad_DrainsAndFlushes_EveryAnsweredRequestHasExactlyOneRow_BeforeItExits()
    {
        var (gateway, url) = await StartGatewayAsync();
        using var admin = new HttpClient { BaseAddress = url };
        admin.DefaultRequestHeaders.Authorization = new("Bearer", GatewayHost.MasterKey);
        var created = (await (await admin.PostAsJsonAsync("/admin/keys", new JsonObject { ["name"] = "sigterm" })).Content.ReadFromJsonAsync<JsonObject>())!;
        var keyId = created["id"]!.GetValue<Guid>();
        using var client = new HttpClient { BaseAddress = url };
        client.DefaultRequestHeaders.Authorization = new("Bearer", created["key"]!.GetValue<string>());
        await GatewayHost.WaitUntilServedAsync(client, "mock");
        var answered = new ConcurrentBag<Guid>();
        var refused = 0;

        var load = Task.WhenAll(Enumerable.Range(0, 8).Select(async worker =>
        {
            for (var i = 0; !gateway.HasExited; i++)
            {
                try
                {
                    // Streams, so some are mid-answer when the signal comes.
                    using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
                        $$"""{"model":"mock","stream":true,"messages":[{"role":"user","content":"w{{worker}} q{{i}}"}]}""", Encoding.UTF8, "application/json"));
                    var body = await response.Content.ReadAsStringAsync();
                    if (response.StatusCode == HttpStatusCode.OK && body.EndsWith("data: [DONE]\n\n", StringComparison.Ordinal))
                        answered.Add(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref refused); // the listener is closed: cleanly refused, never half-answered
                }
            }
        }));
        await Eventually.UntilAsync(() => Task.FromResult(answered.Count), n => n >= 20); // under load (returns at the bound either way)
        using (var term = Process.Start("kill", ["-TERM", gateway.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) await term.WaitForExitAsync();
        await gateway.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
        await load;

        Assert.Equal(0, gateway.ExitCode);
        Assert.NotEmpty(answered);
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        var rows = (await db.QueryAsync<Guid>("SELECT request_id FROM usage_events WHERE key_id = @keyId", new { keyId })).AsList();
        Assert.All(answered, id => Assert.Contains(id, rows)); // stored before exit: no restart needed
        Assert.Equal(rows.Count, rows.Distinct().Count());
        Assert.Empty(Directory.GetFiles(Path.Combine(_dir, "journal"), "usage-*.jsonl")); // everything written, nothing left to replay
    }

    [Fact]
    public async Task GatewayKilledHoldingACappedKeysLease_AnotherInstanceGetsItsUnclaimedRestAfterTheBound_AndTheReplayedRowsStillFitTheCap()
    {
        // A database of its own: the instance whose clock the test moves judges every instance it sees, and sees only these.
        var database = await env.Postgres.CreateDatabaseAsync();
        const decimal cap = 1m;
        var beats = new Dictionary<string, string?> { ["Gateway:Budgets:LeaseHeartbeatSeconds"] = "1", ["Gateway:Budgets:LeaseReclaimSeconds"] = "30" };
        var clock = new SkippableClock();
        await using var other = new GatewayHost(database, beats, clock);
        // $0.07 an answer (7 output tokens at $10,000 per million, input free); a request's worst case is its max_tokens' worth.
        var quick = await other.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", inputPrice: 0, outputPrice: 10_000, cachedPrice: 0, cacheWritePrice: 0,
            cacheWrite1hPrice: 0, everyHost: true);
        // Never answers; its prompt (about 100 tokens at $1,000 per million) is what a request cut by the kill is charged.
        var hang = await other.AddModelAsync(env.Upstream.BaseUrl, "hang", inputPrice: 1000, outputPrice: 1, cachedPrice: 1000, ttftTimeoutMs: 600_000,
            everyHost: true);
        var (key, keyId) = await other.CreateKeyAsync("lease-crash", hardCapUsd: cap);
        var asEnvironment = beats.ToDictionary(s => s.Key.Replace(":", "__", StringComparison.Ordinal), s => s.Value!);
        var (first, url) = await StartGatewayAsync(database, asEnvironment);
        using var onFirst = new HttpClient { BaseAddress = url, Timeout = Timeout.InfiniteTimeSpan };
        onFirst.DefaultRequestHeaders.Authorization = new("Bearer", key);
        using var onOther = other.Client(key);
        static StringContent Ask(string model, int maxTokens, string content) =>
            new($$"""{"model":"{{model}}","max_tokens":{{maxTokens}},"messages":[{"role":"user","content":"{{content}}"}]}""", Encoding.UTF8, "application/json");

        // The first instance leases $0.95 for a $0.95 worst case that costs $0.07, then starts two calls that never end.
        using (var answered = await onFirst.PostAsync("/v1/chat/completions", Ask(quick, 95, "hi")))
            Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        var marker = Guid.NewGuid().ToString("N");
        var cut = Enumerable.Range(0, 2).Select(i => Task.Run(async () =>
        {
            try
            {
                using var response = await onFirst.PostAsync("/v1/chat/completions", Ask(hang, 1, $"{marker} {i} " + string.Join(' ', Enumerable.Repeat("budget", 100))));
            }
            catch (HttpRequestException)
            {
                // cut by the kill
            }
        })).ToList();
        await Eventually.TrueAsync(() => env.Upstream.Requests.Count(r => r.Body.Contains(marker, StringComparison.Ordinal)) == 2, what: "both calls at the upstream");
        // Its heartbeat claims what it holds plus a quarter of the lease (its first beat after the calls allowed for more of them).
        var lease = await Eventually.UntilAsync(() => LeasesAsync(database, keyId), l => l is [{ Claimed: var c, Amount: var a }] && c <= a * 0.7m);
        Assert.True(lease is [{ Claimed: var claimed, Amount: var amount }] && claimed <= amount * 0.7m, $"the claim did not come down: {lease[0]}");
        await Eventually.TrueAsync(async () => (await RowsAsync(database, keyId)).Count == 1, what: "the first answer's row");

        first.Kill(); // SIGKILL: its two calls never settle, its lease stays open
        await first.WaitForExitAsync();
        await Task.WhenAll(cut);

        // The other instance: $0.05 is not leased, less than a $0.07 answer.
        using (var refused = await onOther.PostAsync("/v1/chat/completions", Ask(quick, 7, "hi")))
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        // Its clock passes the bound (its heartbeat must have seen the dead counter stand still since, so it may take a few skips).
        using var served = await Eventually.UntilAsync(async () =>
        {
            clock.Skip(TimeSpan.FromSeconds(31));
            return await onOther.PostAsync("/v1/chat/completions", Ask(quick, 7, "hi"));
        }, r => r.StatusCode == HttpStatusCode.OK, pause: TimeSpan.FromMilliseconds(200));
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        var reclaimed = Assert.Single(await LeasesAsync(database, keyId), l => l.Id == lease[0].Id);
        Assert.Equal((lease[0].Claimed, true), (reclaimed.Amount, reclaimed.ReclaimedAt is not null));
        var before = await FillAsync(onOther, () => Ask(quick, 7, "hi"));
        Assert.True(before > 0);

        // The first instance comes back on its journal: its two calls are stored as interrupted, charged their prompts.
        await StartGatewayAsync(database, asEnvironment);
        var rows = await Eventually.UntilAsync(() => RowsAsync(database, keyId), r => r.Count(x => x.Kind == "interrupted") == 2);
        var interrupted = rows.Where(r => r.Kind == "interrupted").Sum(r => r.Cost);
        Assert.True(interrupted > 0.07m, $"the replay ({interrupted}) brings less than the room one answer needs: the test proves nothing");
        Assert.True(rows.Sum(r => r.Cost) <= cap, $"spent {rows.Sum(r => r.Cost)} on a {cap} cap once the journal was replayed");

        // Its replay done, it closes its earlier run's lease at what was consumed: the rest of the claim comes back too.
        await Eventually.TrueAsync(async () => (await LeasesAsync(database, keyId)).Single(l => l.Id == lease[0].Id) is { Amount: var a, Consumed: var c } && a == c,
            what: "the earlier run's lease closed at what it consumed");
        var after = await FillAsync(onOther, () => Ask(quick, 7, "hi"));
        var all = await Eventually.UntilAsync(() => RowsAsync(database, keyId), r => r.Count == 3 + before + after);
        await using var db = new NpgsqlConnection(database);
        var spent = all.Sum(r => r.Cost);
        Assert.Equal(spent, await db.ExecuteScalarAsync<decimal>("SELECT sum(cost_usd) FROM usage_daily WHERE key_id = @keyId", new { keyId }));
        Assert.InRange(spent, cap - 2 * 0.07m, cap); // nothing of the dead instance's stays stranded
    }

    /// <summary>Sends <paramref name="ask"/> until the cap refuses it; returns how many were answered.</summary>
    private static async Task<int> FillAsync(HttpClient client, Func<StringContent> ask)
    {
        for (var answered = 0; answered < 100; answered++)
        {
            using var response = await client.PostAsync("/v1/chat/completions", ask());
            if (response.StatusCode == HttpStatusCode.TooManyRequests) return answered;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        throw new InvalidOperationException("the cap never refused");
    }

    private sealed record Lease(Guid Id, decimal Amount, decimal Consumed, decimal? Claimed, DateTime? ReclaimedAt);

    private static async Task<List<Lease>> LeasesAsync(string database, Guid keyId)
    {
        await using var db = new NpgsqlConnection(database);
        return (await db.QueryAsync<Lease>("SELECT id, amount, consumed, claimed, reclaimed_at AS ReclaimedAt FROM budget_leases WHERE key_id = @keyId ORDER BY created_at, id",
            new { keyId })).AsList();
    }

    private static async Task<List<(string? Kind, decimal Cost)>> RowsAsync(string database, Guid keyId)
    {
        await using var db = new NpgsqlConnection(database);
        return (await db.QueryAsync<(string?, decimal)>("SELECT error_kind, cost_usd FROM usage_events WHERE key_id = @keyId AND status <> 429",
            new { keyId })).AsList();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var process in _started)
        {
            if (!process.HasExited) process.Kill();
            await process.WaitForExitAsync();
            process.Dispose();
        }
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }
}
