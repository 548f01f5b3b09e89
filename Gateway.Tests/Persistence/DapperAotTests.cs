using System.Text.RegularExpressions;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Persistence;

/// <summary>
/// The Native AOT API host cannot run vanilla Dapper (it emits IL), and Dapper.AOT leaves a call it cannot read on vanilla
/// Dapper, sometimes without a diagnostic (an args member typed through another generator's output). The JIT-run tests would
/// pass either way, so this checks the build itself: every Dapper call in Gateway.Core has a generated interceptor.
/// </summary>
public sealed partial class DapperAotTests
{
    [Fact]
    public void EveryDapperCallInGatewayCore_IsInterceptedByDapperAot()
    {
        var core = Path.Combine(RepoPaths.Root, "Gateway.Core");
        var generated = Directory.EnumerateFiles(Path.Combine(core, "obj"), "Gateway.Core.generated.cs", SearchOption.AllDirectories)
            .Where(f => f.Contains("DapperInterceptorGenerator", StringComparison.Ordinal))
            .OrderByDescending(File.GetLastWriteTimeUtc).FirstOrDefault();
        Assert.True(generated is not null, "Dapper.AOT wrote no interceptors under Gateway.Core/obj (EmitCompilerGeneratedFiles off?)");
        var intercepted = Intercepts().Matches(File.ReadAllText(generated))
            .Select(m => (File: Path.GetFileName(m.Groups["path"].Value), Line: int.Parse(m.Groups["line"].Value, System.Globalization.CultureInfo.InvariantCulture)))
            .ToHashSet();

        var calls = new List<(string File, int Line, string Text)>();
        foreach (var file in Directory.EnumerateFiles(core, "*.cs", SearchOption.AllDirectories))
        {
            if (file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)) continue;
            var lines = File.ReadAllLines(file);
            for (var i = 0; i < lines.Length; i++)
                if (DapperCall().IsMatch(lines[i])) calls.Add((Path.GetFileName(file), i + 1, lines[i].Trim()));
        }

        Assert.True(calls.Count > 50, $"only {calls.Count} Dapper calls found: has the pattern gone stale?");
        Assert.Empty(calls.Where(c => !intercepted.Contains((c.File, c.Line))).Select(c => $"{c.File}:{c.Line}: {c.Text}"));
    }

    // Dapper's extension methods on a connection (the receivers Gateway.Core uses; a command's own ExecuteScalarAsync is not Dapper).
    [GeneratedRegex(@"\b(connection|lockConnection)\.(Query|QueryAsync|QueryFirst\w*|QuerySingle\w*|QueryUnbufferedAsync|QueryMultiple\w*|Execute|ExecuteAsync|ExecuteScalar\w*|ExecuteReader\w*)(<[^(]*>)?\(")]
    private static partial Regex DapperCall();

    [GeneratedRegex(@"InterceptsLocationAttribute\(""(?<path>[^""]+)"", (?<line>\d+), \d+\)")]
    private static partial Regex Intercepts();
}
