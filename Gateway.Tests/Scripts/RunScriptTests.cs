using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Scripts;

/// <summary>The README's run command, as a newcomer runs it: ./run.sh, curl, Ctrl-C, and ./run.sh again the next day.</summary>
[Collection(HeavyTests.Name)]
public sealed class RunScriptTests
{
    [Fact]
    public async Task RunScript_StartsEverythingAnswersMockStopsCleanlyOnSigtermAndPrintsNoSecretOnTheSecondStart()
    {
        var data = Path.Combine(Path.GetTempPath(), "gw-run-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(data);
        var apiPort = PostgresFixture.FreePort();
        var adminPort = PostgresFixture.FreePort();
        var pgPort = PostgresFixture.FreePort();
        Process? process = null;
        try
        {
            (process, var output) = await StartAsync(data, apiPort, adminPort, pgPort);
            var demoKey = output.Single(l => l.StartsWith("Demo key: ", StringComparison.Ordinal))["Demo key: ".Length..];
            var masterKey = await File.ReadAllTextAsync(Path.Combine(data, "master-key"));
            Assert.Single(output, l => l.StartsWith($"Master key: {masterKey} ", StringComparison.Ordinal));
            Assert.Single(output, l => l.StartsWith("Admin user: admin@localhost  password: ", StringComparison.Ordinal));
            using (var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{adminPort}") })
            {
                var login = await admin.GetStringAsync("/account/login");
                Assert.Contains("id=\"sign-in\"", login, StringComparison.Ordinal);
                // MudBlazor's stylesheet comes from a package (_content/): served from the Release build, too.
                var css = System.Text.RegularExpressions.Regex.Match(login, "_content/MudBlazor/MudBlazor\\.min\\.[a-z0-9]+\\.css").Value;
                Assert.NotEmpty(css);
                var style = await admin.GetAsync(css);
                Assert.Equal((HttpStatusCode.OK, "text/css"), (style.StatusCode, style.Content.Headers.ContentType?.MediaType));
            }

            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{apiPort}") };
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", demoKey);
            var response = await client.PostAsync("/v1/chat/completions",
                new StringContent("""{"model":"mock","messages":[{"role":"user","content":"Hello!"}]}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Contains("Hello!", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);

            // Every runnable example of the README, as printed, against this install (ReadmeExamples says how).
            var examples = await ReadmeExamples.RunAsync(apiPort, data);
            Assert.Contains("Which model answers?", examples, StringComparison.Ordinal);
            Assert.Contains("x-gateway-model: mock-mini-1", examples, StringComparison.OrdinalIgnoreCase);
            Assert.Contains("x-gateway-rule: default", examples, StringComparison.OrdinalIgnoreCase);
            Assert.Contains("Created Finance user alice@example.com; password: ", examples, StringComparison.Ordinal);

            await StopAsync(process);
            Assert.Contains(output, l => l.StartsWith("Stopping PostgreSQL", StringComparison.Ordinal));
            Assert.False(File.Exists(Path.Combine(data, "pg", "postmaster.pid")), "PostgreSQL still running");
            await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync("/health/live"));

            // The second start prints no secret: the master key, demo key and admin password were shown when they were made.
            process.Dispose();
            (process, output) = await StartAsync(data, apiPort, adminPort, pgPort);
            Assert.DoesNotContain(output, l => l.Contains(masterKey, StringComparison.Ordinal) || l.Contains(demoKey, StringComparison.Ordinal));
            Assert.DoesNotContain(output, l => l.StartsWith("Master key:", StringComparison.Ordinal) || l.StartsWith("Demo key:", StringComparison.Ordinal)
                || l.StartsWith("Admin user:", StringComparison.Ordinal));
            Assert.Single(output, l => l.StartsWith($"Master key kept in {data}/master-key", StringComparison.Ordinal));
            Assert.Single(output, l => l.StartsWith($"Demo key kept in {data}/demo-key", StringComparison.Ordinal));
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions",
                new StringContent("""{"model":"mock","messages":[{"role":"user","content":"Again"}]}""", Encoding.UTF8, "application/json"))).StatusCode);
            await StopAsync(process);
        }
        finally
        {
            if (process is { HasExited: false })
            {
                process.Kill(entireProcessTree: true);
                await StopClusterAsync(data);
            }
            process?.Dispose();
            Directory.Delete(data, recursive: true);
        }
    }

    /// <summary>Starts ./run.sh as a newcomer does and waits until it says the admin app is up; its output, both streams, as it comes.</summary>
    private static async Task<(Process Process, ConcurrentQueue<string> Output)> StartAsync(string data, int apiPort, int adminPort, int pgPort)
    {
        var root = RepoPaths.Root;
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = root };
        start.ArgumentList.Add(Path.Combine(root, "run.sh"));
        start.Environment["GATEWAY_DATA_DIR"] = data;
        start.Environment["GATEWAY_API_PORT"] = apiPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["GATEWAY_ADMIN_PORT"] = adminPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["GATEWAY_PG_PORT"] = pgPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment.Remove("ConnectionStrings__Gateway");
        start.Environment.Remove("Gateway__MasterKey");
        var output = new ConcurrentQueue<string>();
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) output.Enqueue(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) output.Enqueue(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await GatewayHost.WaitUntilAsync(() => output.Any(l => l.StartsWith("Admin app on", StringComparison.Ordinal)) || process.HasExited, 300_000);
        Assert.False(process.HasExited, string.Join('\n', output));
        return (process, output);
    }

    private static async Task StopAsync(Process process)
    {
        using (var term = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) await term.WaitForExitAsync();
        await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
    }

    private static async Task StopClusterAsync(string data)
    {
        if (!File.Exists(Path.Combine(data, "pg", "postmaster.pid"))) return;
        using var stop = Process.Start("bash", [Path.Combine(RepoPaths.Root, "scripts", "private-postgres.sh"), "stop", Path.Combine(data, "pg")]);
        await stop.WaitForExitAsync();
    }
}
