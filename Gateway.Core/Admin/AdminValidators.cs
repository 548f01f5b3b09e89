using FluentValidation;
using Gateway.Core.Secrets;

namespace Gateway.Core.Admin;

internal static class Limits
{
    /// <summary>Largest money amount accepted (numeric(18,6) holds less than 10^12).</summary>
    public const decimal MaxUsd = 1_000_000_000m;

    public static bool Printable(string? text) => text is null || !text.Any(char.IsControl);
}

public sealed class CreateKeyRequestValidator : AbstractValidator<CreateKeyRequest>
{
    public CreateKeyRequestValidator()
    {
        RuleFor(r => r.Name).NotEmpty().MaximumLength(200).Must(Limits.Printable).WithMessage("'name' must not contain control characters.");
        RuleForEach(r => r.AllowedModels).NotEmpty().Must(Limits.Printable);
        RuleFor(r => r.Owner).MaximumLength(200).Must(Limits.Printable);
        RuleForEach(r => r.Tags).NotEmpty().MaximumLength(100).Must(Limits.Printable);
        RuleFor(r => r.DailyBudgetUsd).InclusiveBetween(0, Limits.MaxUsd);
        RuleFor(r => r.HardCapUsd).InclusiveBetween(0, Limits.MaxUsd);
        RuleFor(r => r.MonthlyBudgetUsd).InclusiveBetween(0, Limits.MaxUsd);
        RuleFor(r => r.EndUserDailyBudgetUsd).InclusiveBetween(0, Limits.MaxUsd);
        RuleFor(r => r.DowngradeModel).MaximumLength(200).Must(Limits.Printable);
        RuleFor(r => r.RpmLimit).GreaterThan(0);
        RuleFor(r => r.TpmLimit).GreaterThan(0);
        RuleFor(r => r.CacheTtlSeconds).InclusiveBetween(1, 30 * 86_400);
        RuleFor(r => r.InjectionFilter).Must(v => v is null || Guards.InjectionFilter.ParseAction(v) is not null)
            .WithMessage("'injection_filter' must be off, flag or block.");
        RuleForEach(r => r.BudgetTiers).Must(t => t.AtPercent is > 0 and <= 1000 && !string.IsNullOrWhiteSpace(t.Model))
            .WithMessage("Each budget tier needs 'at_percent' (1 to 1000) and a 'model'.");
        RuleFor(r => r.DailyBudgetUsd).NotNull().When(r => r.BudgetTiers is { Count: > 0 })
            .WithMessage("'budget_tiers' are shares of 'daily_budget_usd', which must be set.");
    }
}

public sealed class ProviderRequestValidator : AbstractValidator<ProviderRequest>
{
    public static readonly string[] Protocols = ["openai", "anthropic", "gemini", "mock"];

    public ProviderRequestValidator(SecretResolver secrets)
    {
        RuleFor(r => r.Name).NotEmpty().MaximumLength(100).Matches("^[a-z0-9][a-z0-9._-]*$")
            .WithMessage("'name' must be lower-case letters, digits, '.', '_' or '-'.");
        RuleFor(r => r.Protocol).NotEmpty().Must(p => Protocols.Contains(p))
            .WithMessage($"'protocol' must be one of: {string.Join(", ", Protocols)}.");
        RuleFor(r => r.BaseUrl).NotEmpty()
            .Must((r, u) => Uri.TryCreate(u, UriKind.Absolute, out var uri) && (uri.Scheme is "http" or "https" || r.Protocol == "mock" && uri.Scheme == "mock"))
            .WithMessage("'base_url' must be an absolute http(s) URL (mock providers: mock://…).");
        RuleFor(r => r.BaseUrl).Must(u => secrets.ForbiddenBaseUrl(u) is null).When(r => r.BaseUrl is not null)
            .WithMessage(r => $"'base_url' is not allowed: {secrets.ForbiddenBaseUrl(r.BaseUrl)}.");
        RuleFor(r => r.SecretRef).Must(s => SecretResolver.IsReference(s!) && !s!.StartsWith("enc:", StringComparison.Ordinal))
            .When(r => r.SecretRef is not null)
            .WithMessage("'secret_ref' must be 'env:NAME' or 'file:/path'; send a literal secret as 'secret' to store it encrypted.");
        RuleFor(r => r.SecretRef).Must(s => secrets.Forbidden(s!) is null)
            .When(r => r.SecretRef is not null && SecretResolver.IsReference(r.SecretRef))
            .WithMessage(r => $"'secret_ref' is not allowed: {secrets.Forbidden(r.SecretRef!)}.");
        RuleFor(r => r).Must(r => r.SecretRef is null || r.Secret is null).WithName("secret")
            .WithMessage("Send either 'secret_ref' or 'secret', not both.");
        RuleFor(r => r.Settings).Must(s => s!.Problem() is null).When(r => r.Settings is not null)
            .WithMessage(r => r.Settings!.Problem()!);
    }
}

public sealed class ModelRequestValidator : AbstractValidator<ModelRequest>
{
    public ModelRequestValidator()
    {
        RuleFor(r => r.Alias).NotEmpty().MaximumLength(200).Must(Limits.Printable).WithMessage("'alias' must not contain control characters.");
        RuleFor(r => r.Provider).NotEmpty();
        RuleFor(r => r.UpstreamModel).NotEmpty().MaximumLength(200).Must(Limits.Printable).WithMessage("'upstream_model' must not contain control characters.");
        RuleFor(r => r.InputPricePerMtok).InclusiveBetween(0, 100_000);
        RuleFor(r => r.OutputPricePerMtok).InclusiveBetween(0, 100_000);
        RuleFor(r => r.CachedInputPricePerMtok).InclusiveBetween(0, 100_000);
        RuleFor(r => r.ContextWindow).GreaterThan(0);
        RuleFor(r => r.MaxOutputTokens).GreaterThan(0);
        RuleFor(r => r.TtftTimeoutMs).InclusiveBetween(100, 600_000);
        RuleFor(r => r.TimeoutMs).InclusiveBetween(100, 3_600_000);
        RuleFor(r => r.Fallbacks).Must(f => f!.Count <= Catalog.ModelCatalog.MaxCandidates - 1).When(r => r.Fallbacks is not null)
            .WithMessage($"'fallbacks' holds at most {Catalog.ModelCatalog.MaxCandidates - 1} aliases.");
        RuleForEach(r => r.Fallbacks).NotEmpty().Must((r, f) => f != r.Alias).WithMessage("A model cannot be its own fallback.");
    }
}
