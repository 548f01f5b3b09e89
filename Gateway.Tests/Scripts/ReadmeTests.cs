using System.Text.RegularExpressions;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Scripts;

/// <summary>
/// What can be checked of the README without running it (RunScriptTests runs its examples against ./run.sh): the examples
/// use only what a default install has, and set what they use.
/// </summary>
public sealed partial class ReadmeTests
{
    private static readonly string Readme = File.ReadAllText(Path.Combine(RepoPaths.Root, "README.md"));

    [Fact]
    public void Readme_RunnableExamples_UseOnlyTheDefaultInstallsModels()
    {
        var blocks = ReadmeExamples.Runnable(Readme);

        Assert.True(blocks.Count >= 6, $"only {blocks.Count} runnable examples found");
        var models = blocks.SelectMany(b => ModelName().Matches(b.Code)).Select(m => m.Groups[1].Value).ToHashSet();
        Assert.Subset(new HashSet<string> { "mock", "mock-mini", "auto" }, models);
    }

    [Fact]
    public void Readme_DemoKey_IsSetBeforeItIsUsed()
    {
        var blocks = ReadmeExamples.Runnable(Readme).ToList();

        var firstUse = blocks.FindIndex(b => b.Code.Contains("$DEMO_KEY", StringComparison.Ordinal));
        var set = blocks.FindIndex(b => b.Code.Contains("export DEMO_KEY=", StringComparison.Ordinal));
        Assert.InRange(set, 0, firstUse);
    }

    [Fact]
    public void Readme_SpeaksOfCapabilitiesNotIssueNumbers()
    {
        Assert.DoesNotMatch(IssueNumber(), Readme);
    }

    [GeneratedRegex(@"""model""\s*:\s*""([^""]+)""")]
    private static partial Regex ModelName();

    [GeneratedRegex(@"\b[Ii]ssue\s+#?\d+")]
    private static partial Regex IssueNumber();
}
