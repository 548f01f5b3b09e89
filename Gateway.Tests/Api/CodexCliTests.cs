using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

/// <summary>
/// Codex CLI, OpenAI's coding agent (npm <c>@openai/codex</c>, the version <c>.ci/run</c> installs), as a real client of the
/// Responses door: run headless (<c>codex exec</c>) with a model provider of its own config at the gateway
/// (<c>wire_api = "responses"</c>), against an OpenAI-compatible upstream that calls tools (<see cref="ScriptedToolCalls"/>), it has
/// to complete a task that needs its shell tool (<c>exec_command</c>): the model asks for the call, Codex runs the command and sends
/// the output back, the model answers. Skipped only where no <c>codex</c> binary is found.
/// </summary>
/// <remarks>
/// Codex's default request also declares a <c>web_search</c> built-in tool and a <c>namespace</c> of sub-agent tools, which this
/// gateway's translation to chat APIs cannot carry (the door answers 400 for them, as it does for any client). Through a chat API
/// Codex runs without them: the config turns web search and the multi-agent feature off. Through a provider that serves the
/// Responses API itself (OpenAI), the request is passed through and Codex runs with its defaults.
/// </remarks>
public sealed class CodexCliTests(TestEnvironment env)
{
    public const string PinnedVersion = "0.171.0";

    [Fact]
    public async Task CodexCli_AskedToRunACommand_RunsItThroughTheGateway()
    {
        var codex = AgentCli.Find("CODEX_CLI_BIN", "codex");
        if (codex is null)
            Assert.Skip($"Codex CLI is not installed: no 'codex' on the PATH and no CODEX_CLI_BIN (.ci/run installs it: npm install -g @openai/codex@{PinnedVersion}).");

        var model = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, ScriptedToolCalls.ModelPrefix + "-codex");
        var (key, keyId) = await env.Gateway.CreateKeyAsync("codex-cli");
        var work = Directory.CreateTempSubdirectory("codex-work-");
        var home = Directory.CreateTempSubdirectory("codex-home-");
        try
        {
            var marker = "codex-" + Guid.NewGuid().ToString("N");
            var file = Path.Combine(work.FullName, "out.txt");
            var arguments = new JsonObject { ["cmd"] = $"echo {marker} > out.txt", ["workdir"] = work.FullName }.ToJsonString();
            var (exit, stdout, stderr) = await RunAsync(codex, work.FullName, home.FullName, key, model, $"call exec_command with {arguments}");

            var received = env.Upstream.Requests.Where(r => r.Body.Contains(marker, StringComparison.Ordinal)).Select(r => r.Json).ToList();
            var seen = string.Join('\n', received.Select(r => $"{r["model"]} stream={r["stream"]} tools=[{string.Join(',', (r["tools"] as JsonArray ?? []).Select(t => t!["function"]!["name"]))}] last={r["messages"]!.AsArray()[^1]!["role"]}"));
            TestContext.Current.TestOutputHelper?.WriteLine($"codex exit {exit}\nstdout: {stdout}\nstderr: {stderr}\nupstream saw:\n{seen}");
            Assert.True(exit == 0, $"codex exited {exit}\nstdout: {stdout}\nstderr: {stderr}\nupstream saw:\n{seen}");
            Assert.True(File.Exists(file), $"no file\nstdout: {stdout}\nstderr: {stderr}\nupstream saw:\n{seen}");
            Assert.Equal(marker + "\n", await File.ReadAllTextAsync(file, TestContext.Current.CancellationToken));

            // The model's last words quote the shell tool's result, which Codex prints as its final message.
            Assert.Contains(ScriptedToolCalls.ResultPrefix, stdout, StringComparison.Ordinal);
            Assert.Contains("exec_command", received[0]["tools"]!.AsArray().Select(t => t!["function"]!["name"]!.GetValue<string>()));
            Assert.Equal("tool", received[^1]["messages"]!.AsArray()[^1]!["role"]!.GetValue<string>());

            // Every call Codex made is metered as coming through the Responses door: at least the tool call and the answer.
            var rows = await Eventually.UntilAsync(() => env.UsageRowsForKeyAsync(keyId), r => r.Count >= received.Count);
            Assert.True(rows.Count >= 2, $"{rows.Count} usage rows");
            Assert.All(rows, r => Assert.Equal(("openai.responses", (short)200, model), (r.FrontDoor, r.Status, r.AskedModel)));
        }
        finally
        {
            work.Delete(recursive: true);
            home.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task CodexCli_WithItsDefaultTools_AnswersThroughAProviderServingResponses()
    {
        var codex = AgentCli.Find("CODEX_CLI_BIN", "codex");
        if (codex is null)
            Assert.Skip($"Codex CLI is not installed: no 'codex' on the PATH and no CODEX_CLI_BIN (.ci/run installs it: npm install -g @openai/codex@{PinnedVersion}).");

        var model = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-5-codex-" + Guid.NewGuid().ToString("N")[..8],
            settings: new JsonObject { ["responses_api"] = true });
        var (key, keyId) = await env.Gateway.CreateKeyAsync("codex-cli-native");
        var work = Directory.CreateTempSubdirectory("codex-work-");
        var home = Directory.CreateTempSubdirectory("codex-home-");
        try
        {
            var (exit, stdout, stderr) = await RunAsync(codex, work.FullName, home.FullName, key, model, "Say hello", defaults: true);
            var upstreamModel = model[(model.IndexOf('/', StringComparison.Ordinal) + 1)..];
            var received = env.Upstream.Requests.Where(r => r.Path == "/v1/responses" && r.Body.Contains(upstreamModel, StringComparison.Ordinal)).Select(r => r.Json).ToList();
            Assert.True(exit == 0, $"codex exited {exit}\nstdout: {stdout}\nstderr: {stderr}");
            Assert.Contains(FakeOpenAI.ResponsesAnswer, stdout, StringComparison.Ordinal);

            // Its own request, built-in tool and all, reached the upstream as Codex wrote it.
            var sent = Assert.Single(received);
            var types = sent["tools"]!.AsArray().Select(t => t!["type"]!.GetValue<string>()).ToList();
            Assert.Contains("web_search", types);
            Assert.Contains("namespace", types);
            var row = Assert.Single(await Eventually.UntilAsync(() => env.UsageRowsForKeyAsync(keyId), r => r.Count >= 1));
            Assert.Equal(("openai.responses", (short)200, FakeOpenAI.ResponsesInputTokens), (row.FrontDoor, row.Status, row.PromptTokens));
        }
        finally
        {
            work.Delete(recursive: true);
            home.Delete(recursive: true);
        }
    }

    /// <summary>Runs <c>codex exec</c> in <paramref name="work"/> with a CODEX_HOME of its own and nothing but the gateway to talk to;
    /// with web search and sub-agents off unless <paramref name="defaults"/>.</summary>
    private async Task<(int Exit, string Stdout, string Stderr)> RunAsync(string codex, string work, string home, string key, string model, string prompt,
        bool defaults = false)
    {
        // The gateway as a model provider of Codex's own config (https://developers.openai.com/codex/config-reference): Codex
        // appends /responses to base_url and sends the key named by env_key as a bearer token. No retries (a failure shows at
        // once); no update check, analytics, feedback or OpenTelemetry export; no web search and no sub-agents (see the remarks).
        var config = $"""
            model = "{model}"
            model_provider = "gateway"
            check_for_update_on_startup = false
            {(defaults ? "" : "web_search = \"disabled\"")}

            [model_providers.gateway]
            name = "Gateway under test"
            base_url = "{env.Gateway.BaseAddress.ToString().TrimEnd('/')}/v1"
            env_key = "GATEWAY_TEST_KEY"
            wire_api = "responses"
            request_max_retries = 0
            stream_max_retries = 0

            [analytics]
            enabled = false

            [feedback]
            enabled = false

            [otel]
            exporter = "none"

            [features]
            multi_agent = {(defaults ? "true" : "false")}
            """;
        await File.WriteAllTextAsync(Path.Combine(home, "config.toml"), config, TestContext.Current.CancellationToken);

        // --strict-config: a config key this version does not know fails the run instead of being ignored. The sandbox is off: the
        // test's own temporary directory is all the command touches, and a container may not allow Codex's bubblewrap sandbox.
        // Whatever the developer's own shell has for Codex or OpenAI stays out.
        var start = AgentCli.Start(codex, work, home,
            ["exec", "--strict-config", "--ephemeral", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "--color", "never", prompt],
            "OPENAI_", "CODEX_");
        start.Environment["CODEX_HOME"] = home;
        start.Environment["GATEWAY_TEST_KEY"] = key;

        return await AgentCli.RunAsync(start);
    }
}
