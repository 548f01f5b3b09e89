using System.Text.RegularExpressions;
using FluentValidation;

namespace Gateway.Core.Routing;

public sealed class RoutingRuleValidator : AbstractValidator<RoutingRule>
{
    public RoutingRuleValidator()
    {
        RuleFor(r => r.Name).NotEmpty().MaximumLength(100).Matches("^[A-Za-z0-9][A-Za-z0-9._-]*$")
            .WithMessage("'name' must be letters, digits, '.', '_' or '-'.");
        RuleFor(r => r.Targets).NotEmpty().WithMessage("'targets' needs at least one model.");
        RuleForEach(r => r.Targets).ChildRules(t =>
        {
            t.RuleFor(x => x.Model).NotEmpty();
            t.RuleFor(x => x.Weight).InclusiveBetween(1, 1_000_000);
        });
        RuleFor(r => r.Fallbacks).Must(f => f.Count < Catalog.ModelCatalog.MaxCandidates)
            .WithMessage($"'fallbacks' holds at most {Catalog.ModelCatalog.MaxCandidates - 1} aliases.");
        RuleFor(r => r.DowngradeModel).NotEmpty().When(r => r.DowngradeModel is not null).WithName("downgrade_model");
        RuleFor(r => r.InjectionFilter).Must(v => v is null || Guards.InjectionFilter.ParseAction(v) is not null).WithName("injection_filter")
            .WithMessage("'injection_filter' must be off, flag or block.");
        RuleFor(r => r.Match.PromptRegex).Must(Compiles).When(r => r.Match.PromptRegex is not null)
            .WithName("match.prompt_regex").WithMessage("'match.prompt_regex' is not a valid regular expression.");
        RuleFor(r => r.Match.MinPromptTokens).GreaterThanOrEqualTo(0).WithName("match.min_prompt_tokens");
        RuleFor(r => r.Match.MaxPromptTokens).GreaterThanOrEqualTo(0).WithName("match.max_prompt_tokens");
        RuleFor(r => r.Match.MinMaxTokens).GreaterThanOrEqualTo(0).WithName("match.min_max_tokens");
        RuleFor(r => r.Match.MaxMaxTokens).GreaterThanOrEqualTo(0).WithName("match.max_max_tokens");
    }

    private static bool Compiles(string? pattern)
    {
        try
        {
            _ = new Regex(pattern!, RuleBook.Options);
            return true;
        }
        catch (Exception ex) when (ex is ArgumentException or NotSupportedException)
        {
            return false;
        }
    }
}
