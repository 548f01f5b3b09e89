using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Dapper;
using Gateway.Tests.Fixtures;
using Npgsql;

namespace Gateway.Tests.Aot;

/// <summary>
/// The API host as the Native AOT build ships it (bench/run.sh measures it so): published with PublishAot, started as a
/// process on a fresh database, and driven through every door and the admin API. The rest of the suite runs the JIT build,
/// which cannot show what trimming removed or what AOT cannot run (reflection-only JSON, emitted IL, assemblies loaded by name).
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class NativeAotHostTests(TestEnvironment env)
{
    private const string Master = "aot-master-key";

    [Fact]
    public async Task NativeAotHost_ServesEveryDoorAndTheAdminApi_AndMetersEveryRequest()
    {
        var dir = Path.Combine(Path.GetTempPath(), "gw-aot-" + Guid.NewGuid().ToString("N")[..10]);
        var binary = await PublishAsync(Path.Combine(dir, "out"));
        var connectionString = await env.Postgres.CreateDatabaseAsync();
        var port = PostgresFixture.FreePort();
        var start = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir };
        start.ArgumentList.Add("--contentRoot");
        start.ArgumentList.Add(Path.GetDirectoryName(binary)!);
        start.Environment["ConnectionStrings__Gateway"] = connectionString;
        start.Environment["Gateway__MasterKey"] = Master;
        start.Environment["Gateway__DataProtectionKeysDirectory"] = Path.Combine(dir, "keys");
        start.Environment["Gateway__Metering__JournalDirectory"] = Path.Combine(dir, "journal");
        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        var output = new ConcurrentQueue<string>();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) output.Enqueue(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) output.Enqueue(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Master);
            await GatewayHost.WaitUntilAsync(() => process.HasExited || Ready(admin), 120_000);
            Assert.False(process.HasExited, string.Join('\n', output));
            // The build's own GC setting (Gateway.Api.csproj, README "Native AOT"), as the runtime applied it: logged at start, and
            // waited for because the log's lines reach this process's reader on their own schedule.
            await Eventually.TrueAsync(() => output.Any(line => line.Contains("gen0 budget at most 750 permil of live data", StringComparison.Ordinal)),
                what: "The start-up log line with the Native AOT build's gen0 cap");

            // Admin API: a key with a budget tier, a provider with settings, a model, a rule, a tag budget, an admin token.
            var key = await SendAsync(admin, HttpMethod.Post, "/admin/keys",
                """{"name":"aot <img>","daily_budget_usd":5,"hard_cap_usd":10,"tags":["team-a"],"budget_tiers":[{"at_percent":80,"model":"mock-mini"}]}""");
            var keyId = (string)key["id"]!;
            Assert.Equal(80, (int)key["budget_tiers"]![0]!["at_percent"]!);
            await SendAsync(admin, HttpMethod.Patch, $"/admin/keys/{keyId}", """{"daily_budget_usd":7}""");
            await SendAsync(admin, HttpMethod.Post, "/admin/providers",
                $$$"""{"name":"aot-upstream","protocol":"openai","base_url":"{{{env.Upstream.BaseUrl}}}","settings":{"max_tokens_field":"max_completion_tokens"}}""");
            await SendAsync(admin, HttpMethod.Post, "/admin/models",
                """{"alias":"aot-model","provider":"aot-upstream","upstream_model":"gpt-4o-mini","input_price_per_mtok":1,"output_price_per_mtok":2}""");
            var rule = await SendAsync(admin, HttpMethod.Put, "/admin/routes/aot-rule",
                """{"priority":1,"match":{"prompt_keywords":["cheap"]},"targets":[{"model":"mock-mini"}]}""");
            Assert.Equal("mock-mini", (string)rule["targets"]![0]!["model"]!);
            var tested = await SendAsync(admin, HttpMethod.Post, "/admin/routes/test",
                """{"request":{"model":"mock","messages":[{"role":"user","content":"cheap please"}]}}""");
            Assert.Equal("aot-rule", (string?)tested["rule"]);
            await SendAsync(admin, HttpMethod.Put, "/admin/budgets/tags/team-a", """{"daily_budget_usd":3}""");
            Assert.StartsWith("gwa-", (string)(await SendAsync(admin, HttpMethod.Post, "/admin/tokens", """{"name":"ops"}"""))["token"]!, StringComparison.Ordinal);
            using (var bogus = new HttpRequestMessage(HttpMethod.Post, "/admin/providers"))
            {
                bogus.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "not-the-key");
                Assert.Equal(HttpStatusCode.Unauthorized, (await admin.SendAsync(bogus, HttpCompletionOption.ResponseContentRead)).StatusCode);
            }

            // Every door, plain and streamed, through the mock and through an OpenAI-compatible upstream.
            using var client = new HttpClient { BaseAddress = admin.BaseAddress };
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", (string)key["key"]!);
            await GatewayHost.WaitUntilServedAsync(client, "mock", "aot-model");
            var metered = 0;
            async Task<string> Door(string path, string body, bool isMetered = true)
            {
                if (isMetered) metered++;
                using var response = await client.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
                var text = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path}: {(int)response.StatusCode} {text}\n{string.Join('\n', output)}");
                return text;
            }
            Assert.Contains("\"chat.completion\"", await Door("/v1/chat/completions", """{"model":"mock","messages":[{"role":"user","content":"Hello"}]}"""), StringComparison.Ordinal);
            Assert.EndsWith("data: [DONE]\n\n", await Door("/v1/chat/completions", """{"model":"aot-model","stream":true,"messages":[{"role":"user","content":"Hello"}]}"""), StringComparison.Ordinal);
            Assert.Contains("\"type\":\"message\"", await Door("/v1/messages", """{"model":"aot-model","max_tokens":50,"messages":[{"role":"user","content":"Hello"}]}"""), StringComparison.Ordinal);
            Assert.Contains("message_stop", await Door("/v1/messages", """{"model":"mock","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"Hello"}]}"""), StringComparison.Ordinal);
            var first = JsonNode.Parse(await Door("/v1/responses", """{"model":"mock","input":"Hello"}"""))!;
            Assert.Contains("response.completed", await Door("/v1/responses",
                $$"""{"model":"aot-model","input":"again","stream":true,"previous_response_id":"{{first["id"]}}"}"""), StringComparison.Ordinal);
            Assert.Contains("\"embedding\"", await Door("/v1/embeddings", """{"model":"mock","input":"Hello"}"""), StringComparison.Ordinal);
            Assert.Contains("input_tokens", await Door("/v1/messages/count_tokens", """{"model":"mock","messages":[{"role":"user","content":"Hello"}]}""",
                isMetered: false), StringComparison.Ordinal);
            using (var bad = await client.PostAsync("/v1/chat/completions", new StringContent("""{"model":""", Encoding.UTF8, "application/json")))
                Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            metered++; // a refused request leaves its row too

            // Every request leaves its row; reports and exports read them back.
            await using var db = new NpgsqlConnection(connectionString);
            await GatewayHost.WaitUntilAsync(() =>
                db.ExecuteScalar<long>("SELECT count(*) FROM usage_events WHERE key_id = @id::uuid", new { id = keyId }) == metered, 60_000);
            Assert.Contains("aot <img>", await admin.GetStringAsync("/admin/reports/spend?by=key"), StringComparison.Ordinal);
            Assert.Contains("aot <img>", await admin.GetStringAsync("/admin/reports/usage.csv"), StringComparison.Ordinal);
            Assert.StartsWith("BilledCost,", await admin.GetStringAsync("/admin/reports/focus.csv"), StringComparison.Ordinal);
            Assert.Contains("\"Healthy\"", await admin.GetStringAsync("/health/ready"), StringComparison.Ordinal);
            // The aot image's HEALTHCHECK (Gateway.Api healthcheck, with the image's ASPNETCORE_URLS): 0 while this host is ready,
            // 1 where nothing listens.
            Assert.Equal(0, await HealthCheckAsync(binary, $"http://0.0.0.0:{port}"));
            Assert.Equal(1, await HealthCheckAsync(binary, $"http://0.0.0.0:{PostgresFixture.FreePort()}"));
            Assert.DoesNotContain(output, l => l.Contains("fail:", StringComparison.Ordinal) || l.Contains("Exception", StringComparison.Ordinal));
        }
        finally
        {
            if (!process.HasExited)
            {
                using (var term = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)])) await term.WaitForExitAsync();
                await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
            }
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<int> HealthCheckAsync(string binary, string urls)
    {
        var start = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("healthcheck");
        start.Environment["ASPNETCORE_URLS"] = urls;
        using var probe = Process.Start(start)!;
        var output = probe.StandardOutput.ReadToEndAsync();
        var errors = probe.StandardError.ReadToEndAsync();
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await probe.WaitForExitAsync(bound.Token);
        await Task.WhenAll(output, errors);
        return probe.ExitCode;
    }

    private static bool Ready(HttpClient client)
    {
        try { return client.GetAsync("/health/ready").GetAwaiter().GetResult().IsSuccessStatusCode; }
        catch (HttpRequestException) { return false; }
    }

    private static async Task<JsonNode> SendAsync(HttpClient client, HttpMethod method, string path, string body)
    {
        using var request = new HttpRequestMessage(method, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{method} {path}: {(int)response.StatusCode} {text}");
        return JsonNode.Parse(text)!;
    }

    /// <summary>
    /// <c>dotnet publish</c>'s arguments for the Native AOT build, as README, bench/run.sh and the Dockerfile's aot stage give
    /// them (clang and zlib from apt: .ci/run installs them). Its restore adds the ILCompiler package, which the lock files
    /// (restored in locked mode by .ci/run) must not record: hence a lock file of its own under obj/.
    /// </summary>
    internal static readonly string[] PublishArguments =
        ["publish", "Gateway.Api/Gateway.Api.csproj", "-c", "Release", "-r", "linux-x64", "-p:PublishAot=true", "-p:NuGetLockFilePath=obj/aot.packages.lock.json"];

    private static async Task<string> PublishAsync(string output)
    {
        var publish = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = RepoPaths.Root };
        foreach (var arg in PublishArguments.Concat(["-o", output, "--nologo"])) publish.ArgumentList.Add(arg);
        using var process = Process.Start(publish)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromMinutes(20)).Token);
        Assert.True(process.ExitCode == 0, $"publish failed:\n{await stdout}\n{await stderr}");
        return Path.Combine(output, "Gateway.Api");
    }
}
