using System.Diagnostics;
using System.Text;

namespace Gateway.Tests.Fixtures;

/// <summary>A coding agent's command-line client (Claude Code, Codex CLI) run headless by a test, as a developer would run it.</summary>
public static class AgentCli
{
    /// <summary>The client's binary: the path in <paramref name="variable"/>, else <paramref name="name"/> on the PATH; null when neither.</summary>
    public static string? Find(string variable, string name)
    {
        if (Environment.GetEnvironmentVariable(variable) is { Length: > 0 } bin && File.Exists(bin)) return bin;
        return (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);
    }

    /// <summary>
    /// How to start it in <paramref name="work"/> with <paramref name="arguments"/> and its own <c>HOME</c>; variables of the
    /// developer's own shell starting with any of <paramref name="foreignPrefixes"/> (its own settings, keys) stay out.
    /// </summary>
    public static ProcessStartInfo Start(string binary, string work, string home, IEnumerable<string> arguments, params string[] foreignPrefixes)
    {
        var start = new ProcessStartInfo(binary)
        {
            WorkingDirectory = work, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8, StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        foreach (var name in start.Environment.Keys.Where(k => foreignPrefixes.Any(p => k.StartsWith(p, StringComparison.Ordinal))).ToList())
            start.Environment.Remove(name);
        start.Environment["HOME"] = home;
        return start;
    }

    /// <summary>Runs it to its end, within 3 minutes (a few seconds when it works; a hang is killed, with its children, and fails).</summary>
    public static async Task<(int Exit, string Stdout, string Stderr)> RunAsync(ProcessStartInfo start)
    {
        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        bound.CancelAfter(TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(bound.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            return (-1, await stdout, "timed out after 3 minutes\n" + await stderr);
        }
        return (process.ExitCode, await stdout, await stderr);
    }
}
