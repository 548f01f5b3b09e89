using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

/// <summary>
/// Claude Code, Anthropic's coding agent (npm <c>@anthropic-ai/claude-code</c>, the version <c>.ci/run</c> installs), as a real
/// client of the Anthropic door: run headless (<c>claude -p</c>) with <c>ANTHROPIC_BASE_URL</c> at the gateway, against an
/// OpenAI-compatible upstream that calls tools (<see cref="ScriptedToolCalls"/>), it has to complete a task that needs its
/// <c>Write</c> tool: the model asks for the call, Claude Code writes the file and sends the result back, the model answers.
/// Skipped only where no <c>claude</c> binary is found.
/// </summary>
public sealed class ClaudeCodeTests(TestEnvironment env)
{
    public const string PinnedVersion = "2.1.332";

    [Fact]
    public async Task ClaudeCode_AskedToWriteAFile_WritesItThroughTheGateway()
    {
        var claude = AgentCli.Find("CLAUDE_CODE_BIN", "claude");
        if (claude is null)
            Assert.Skip($"Claude Code is not installed: no 'claude' on the PATH and no CLAUDE_CODE_BIN (.ci/run installs it: npm install -g @anthropic-ai/claude-code@{PinnedVersion}).");

        // Claude Code's model names are its settings: the main model and the small fast one, each a gateway alias here.
        var main = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, ScriptedToolCalls.ModelPrefix + "-claude-code");
        var small = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, ScriptedToolCalls.ModelPrefix + "-claude-code-small");
        var (key, keyId) = await env.Gateway.CreateKeyAsync("claude-code");
        var work = Directory.CreateTempSubdirectory("claude-code-work-");
        var home = Directory.CreateTempSubdirectory("claude-code-home-");
        try
        {
            var marker = "claude-code-" + Guid.NewGuid().ToString("N");
            var file = Path.Combine(work.FullName, "hello.txt");
            var content = $"Written by Claude Code through the gateway ({marker}).\n";
            var arguments = new JsonObject { ["file_path"] = file, ["content"] = content }.ToJsonString();
            var (exit, stdout, stderr) = await RunAsync(claude, work.FullName, home.FullName, key, main, small,
                $"Create the file {file}: call Write with {arguments}");

            var received = env.Upstream.Requests.Where(r => r.Body.Contains(marker, StringComparison.Ordinal)).Select(r => r.Json).ToList();
            var seen = string.Join('\n', received.Select(r => $"{r["model"]} stream={r["stream"]} tools=[{string.Join(',', (r["tools"] as JsonArray ?? []).Select(t => t!["function"]!["name"]))}] last={r["messages"]!.AsArray()[^1]!["role"]}"));
            TestContext.Current.TestOutputHelper?.WriteLine($"claude exit {exit}\nstdout: {stdout}\nstderr: {stderr}\nupstream saw:\n{seen}");
            Assert.True(exit == 0, $"claude exited {exit}\nstdout: {stdout}\nstderr: {stderr}\nupstream saw:\n{seen}");
            Assert.True(File.Exists(file), $"no file\nstdout: {stdout}\nupstream saw:\n{seen}");
            Assert.Equal(content, await File.ReadAllTextAsync(file, TestContext.Current.CancellationToken));

            // Claude Code's own report: success, and the model's last words quote the Write tool's result.
            var result = JsonNode.Parse(stdout)!;
            Assert.Equal(("result", false), (result["type"]!.GetValue<string>(), result["is_error"]!.GetValue<bool>()));
            Assert.StartsWith(ScriptedToolCalls.ResultPrefix, result["result"]!.GetValue<string>(), StringComparison.Ordinal);
            Assert.Contains("Write", received[0]["tools"]!.AsArray().Select(t => t!["function"]!["name"]!.GetValue<string>()));

            // Every call Claude Code made is metered as coming through the Anthropic door: at least the tool call and the answer.
            var rows = await Eventually.UntilAsync(() => env.UsageRowsForKeyAsync(keyId), r => r.Count >= received.Count);
            Assert.True(rows.Count >= 2, $"{rows.Count} usage rows");
            Assert.All(rows, r => Assert.Equal(("anthropic.messages", (short)200), (r.FrontDoor, r.Status)));
            Assert.All(rows, r => Assert.Contains(r.AskedModel, new[] { main, small }));
        }
        finally
        {
            work.Delete(recursive: true);
            home.Delete(recursive: true);
        }
    }

    /// <summary>Runs <c>claude -p</c> in <paramref name="work"/> with a home of its own and nothing but the gateway to talk to.</summary>
    private async Task<(int Exit, string Stdout, string Stderr)> RunAsync(string claude, string work, string home, string key, string main,
        string small, string prompt)
    {
        // Whatever the developer's own shell has for Claude Code or Anthropic stays out.
        var start = AgentCli.Start(claude, work, home,
            ["-p", prompt, "--output-format", "json", "--model", main, "--permission-mode", "acceptEdits", "--max-turns", "5"], "ANTHROPIC_", "CLAUDE");
        start.Environment["ANTHROPIC_BASE_URL"] = env.Gateway.BaseAddress.ToString().TrimEnd('/');
        start.Environment["ANTHROPIC_API_KEY"] = key;
        start.Environment["ANTHROPIC_MODEL"] = main;
        start.Environment["ANTHROPIC_SMALL_FAST_MODEL"] = small;
        start.Environment["ANTHROPIC_DEFAULT_HAIKU_MODEL"] = small;
        // No traffic but the model calls: telemetry, error reports, update checks and the rest are off.
        start.Environment["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1";
        start.Environment["DISABLE_TELEMETRY"] = "1";
        start.Environment["DISABLE_ERROR_REPORTING"] = "1";
        start.Environment["DISABLE_AUTOUPDATER"] = "1";
        start.Environment["DISABLE_BUG_COMMAND"] = "1";

        return await AgentCli.RunAsync(start);
    }
}
