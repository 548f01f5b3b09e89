using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Scripts;

/// <summary>
/// The README's <c>bash</c> examples, as printed, run in order in one shell against a running <c>./run.sh</c> install. A block
/// is skipped only when the line before its fence is <c>&lt;!-- readme-test: skip (why) --&gt;</c>. The README is written for
/// a default install (API on 127.0.0.1:8080, PostgreSQL on 55432, state in <c>data/</c>, commands from the repository's
/// root); the test's install has other ports and folders, so only those literals are substituted. Every <c>curl</c> fails
/// the run on an HTTP error (a wrapper adds <c>--fail-with-body</c>), so an example that answers 4xx fails the test.
/// </summary>
internal static partial class ReadmeExamples
{
    public sealed record Block(int Line, string Code);

    /// <summary>The README's runnable bash blocks, in order, with the line of their fence.</summary>
    public static IReadOnlyList<Block> Runnable(string readme)
    {
        var lines = readme.Split('\n');
        var blocks = new List<Block>();
        for (var i = 0; i < lines.Length; i++)
        {
            if (lines[i].Trim() != "```bash") continue;
            var indent = lines[i].IndexOf('`', StringComparison.Ordinal);
            var skip = i > 0 && lines[i - 1].TrimStart().StartsWith("<!-- readme-test: skip", StringComparison.Ordinal);
            var code = new StringBuilder();
            var start = i;
            for (i++; i < lines.Length && lines[i].Trim() != "```"; i++)
                code.Append(lines[i].Length >= indent ? lines[i][indent..] : lines[i].TrimStart()).Append('\n');
            if (!skip) blocks.Add(new Block(start + 1, code.ToString()));
        }
        return blocks;
    }

    /// <summary>Runs the runnable blocks against the install; returns the shell's output. Fails the test on the first failing command.</summary>
    public static async Task<string> RunAsync(int apiPort, string dataDirectory)
    {
        var root = RepoPaths.Root;
        // run.sh's PostgreSQL port is the fourth line of the cluster's pid file.
        var pgPort = File.ReadAllLines(Path.Combine(dataDirectory, "pg", "postmaster.pid"))[3].Trim();
        var work = Directory.CreateTempSubdirectory("gw-readme-").FullName;
        try
        {
            var script = new StringBuilder("""
                set -euo pipefail
                curl() { command curl -sS --fail-with-body "$@"; }

                """);
            foreach (var block in Runnable(await File.ReadAllTextAsync(Path.Combine(root, "README.md"))))
            {
                var code = block.Code
                    .Replace("127.0.0.1:8080", $"127.0.0.1:{apiPort.ToString(CultureInfo.InvariantCulture)}", StringComparison.Ordinal)
                    .Replace("127.0.0.1:55432", $"127.0.0.1:{pgPort}", StringComparison.Ordinal)
                    .Replace("./run.sh", Path.Combine(root, "run.sh"), StringComparison.Ordinal);
                code = DataPath().Replace(code, m => m.Groups[1].Value + dataDirectory + "/");
                script.Append(CultureInfo.InvariantCulture, $"echo '### README.md line {block.Line}'\n").Append(code).Append("echo\n");
            }
            var start = new ProcessStartInfo("bash") { WorkingDirectory = work, RedirectStandardOutput = true, RedirectStandardError = true };
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add(script.ToString());
            start.Environment["GATEWAY_DATA_DIR"] = dataDirectory;
            start.Environment["GATEWAY_PG_PORT"] = pgPort;
            start.Environment.Remove("ConnectionStrings__Gateway");
            start.Environment.Remove("DEMO_KEY");
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            await process.WaitForExitAsync(timeout.Token);
            var output = await stdout + await stderr;
            Assert.True(process.ExitCode == 0, $"A README example failed (exit {process.ExitCode}); the last '###' line names its block:\n{output}");
            return output;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    // "data/" as a path of its own (cat data/master-key, $(cat data/pg.password)), not inside another word.
    [GeneratedRegex(@"(^|[\s(=""'])data/", RegexOptions.Multiline)]
    private static partial Regex DataPath();
}
