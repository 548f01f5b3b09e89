extern alias admin;

using System.Text.Json;
using admin::Gateway.Admin.Components.Pages.Routing;
using Gateway.Core.Routing;

namespace Gateway.Tests.Admin;

/// <summary>The routing page's editor form: it maps to the stored rule and back, and puts each validation problem under its field.</summary>
public sealed class RuleFormTests
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    [Fact]
    public void RuleForm_RuleWithEveryCondition_RoundTripsUnchanged()
    {
        var rule = new RoutingRule
        {
            Name = "everything", Priority = 7, Enabled = false,
            Match = new RuleMatch
            {
                Models = ["auto", "smart"], KeyIds = [Guid.NewGuid()], KeyTags = ["team-a"], Users = ["alice"],
                Headers = new Dictionary<string, string> { ["x-team"] = "search" }, Metadata = new Dictionary<string, string> { ["tier"] = "gold" },
                MinPromptTokens = 10, MaxPromptTokens = 20, MinMaxTokens = 30, MaxMaxTokens = 40, HasTools = true, HasImages = false,
                PromptRegex = "^translate\\b", PromptKeywords = ["classify", "sentiment"],
            },
            Targets = [new RuleTarget("a", 90), new RuleTarget("b", 10)],
            Fallbacks = ["c", "d"],
            DowngradeModel = "mock-mini",
        };

        var (back, problems) = RuleForm.From(rule).ToRule();

        Assert.Empty(problems);
        Assert.Equal(JsonSerializer.Serialize(rule, Json), JsonSerializer.Serialize(back, Json));
    }

    [Fact]
    public void RuleForm_InvalidRule_PutsEachProblemUnderItsField()
    {
        var form = new RuleForm { Name = "bad name!", PromptRegex = "(a)\\1" };
        form.Targets[0].Model = "m";
        form.Targets[0].Weight = 0;
        form.Targets.Add(new RuleForm.Target { Model = "n", Weight = 2 });

        var (rule, parseProblems) = form.ToRule();
        var problems = RuleForm.Problems(new RoutingRuleValidator().Validate(rule!).Errors);

        Assert.Empty(parseProblems);
        Assert.Equal(["Name", "PromptRegex", "Targets[0].Weight"], problems.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void RuleForm_NoTargetRows_IsRefusedUnderTargets()
    {
        var form = new RuleForm { Name = "empty" };

        var (rule, _) = form.ToRule();
        var problems = RuleForm.Problems(new RoutingRuleValidator().Validate(rule!).Errors);

        Assert.Equal("'targets' needs at least one model.", problems["Targets"]);
    }

    [Fact]
    public void RuleForm_UnreadableKeyIdOrHeaderLine_IsAFormProblem()
    {
        var form = new RuleForm { Name = "r", KeyIds = "not-a-guid", Headers = "x-team search" };
        form.Targets[0].Model = "m";

        var (rule, problems) = form.ToRule();

        Assert.Null(rule);
        Assert.Equal(["Headers", "KeyIds"], problems.Keys.Order(StringComparer.Ordinal));
    }
}
