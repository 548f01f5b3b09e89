using FluentValidation;
using Gateway.Core.Admin;

namespace Gateway.Core.Keys;

public sealed class CreateKeyRequestValidator : AbstractValidator<CreateKeyRequest>
{
    public CreateKeyRequestValidator()
    {
        RuleFor(r => r.Name).NotEmpty().MaximumLength(200).Must(AdminLimits.Printable).WithMessage("'name' must not contain control characters.");
        RuleForEach(r => r.AllowedModels).NotEmpty().Must(AdminLimits.Printable);
        RuleFor(r => r.Owner).MaximumLength(200).Must(AdminLimits.Printable);
        RuleForEach(r => r.Tags).NotEmpty().MaximumLength(100).Must(AdminLimits.Printable);
        RuleFor(r => r.DailyBudgetUsd).Money("daily_budget_usd", AdminLimits.MaxUsd);
        RuleFor(r => r.HardCapUsd).Money("hard_cap_usd", AdminLimits.MaxUsd);
        RuleFor(r => r.MonthlyBudgetUsd).Money("monthly_budget_usd", AdminLimits.MaxUsd);
        RuleFor(r => r.EndUserDailyBudgetUsd).Money("end_user_daily_budget_usd", AdminLimits.MaxUsd);
        RuleFor(r => r.DowngradeModel).MaximumLength(200).Must(AdminLimits.Printable);
        RuleFor(r => r.RpmLimit).GreaterThan(0);
        RuleFor(r => r.TpmLimit).GreaterThan(0);
        RuleFor(r => r.CacheTtlSeconds).InclusiveBetween(1, 30 * 86_400);
        RuleFor(r => r.InjectionFilter).Must(v => v is null || Guards.InjectionFilter.ParseAction(v) is not null)
            .WithMessage("'injection_filter' must be off, flag or block.");
        RuleFor(r => r.CacheScope).Must(v => v is null || Caching.ResponseCache.ParseScope(v) is not null)
            .WithMessage("'cache_scope' must be key, tags or global.");
        // Without tags, 'tags' would share with every other tagless 'tags' key: a global cache nobody chose.
        RuleFor(r => r.CacheScope).Must((r, _) => r.Tags?.Any(t => !string.IsNullOrWhiteSpace(t)) == true).When(r => r.CacheScope == "tags")
            .WithMessage("'cache_scope' tags shares cached answers with the keys that have exactly this key's tags, and it has none: "
                + "give it tags, or choose key or global.");
        RuleForEach(r => r.BudgetTiers).Must(t => t.AtPercent is > 0 and <= 1000 && !string.IsNullOrWhiteSpace(t.Model))
            .WithMessage("Each budget tier needs 'at_percent' (1 to 1000) and a 'model'.");
        RuleFor(r => r.DailyBudgetUsd).NotNull().When(r => r.BudgetTiers is { Count: > 0 })
            .WithMessage("'budget_tiers' are shares of 'daily_budget_usd', which must be set.");
    }
}
