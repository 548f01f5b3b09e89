using FluentValidation;
using Gateway.Core.Secrets;

namespace Gateway.Core.Admin;

internal static class Limits
{
    /// <summary>Largest money amount accepted (numeric(18,6) holds less than 10^12).</summary>
    public const decimal MaxUsd = 1_000_000_000m;

    /// <summary>Largest price per million tokens accepted (a cache write's default is up to twice the input price).</summary>
    public const decimal MaxPricePerMTok = 100_000m;

    public static bool Printable(string? text) => text is null || !text.Any(char.IsControl);

    /// <summary>A money field: <see cref="MoneyAmount.Problem"/> names <paramref name="field"/> as the JSON has it.</summary>
    public static IRuleBuilderOptions<T, decimal?> Money<T>(this IRuleBuilder<T, decimal?> rule, string field, decimal max) =>
        rule.Must(v => MoneyAmount.Problem(field, v, max) is null).WithMessage((_, v) => MoneyAmount.Problem(field, v, max));
}

/// <summary>
/// Money amounts (budgets, caps, prices) are stored as <c>numeric(18, 6)</c>: exactly, to the millionth. An amount with more
/// decimals is refused rather than rounded without a word (a budget of 0.0000001 would have become 0.000000).
/// </summary>
public static class MoneyAmount
{
    /// <summary>Decimals stored.</summary>
    public const int Decimals = 6;

    /// <summary>Why <paramref name="value"/> cannot be stored as <paramref name="field"/>, or null when it can (or is not set).</summary>
    public static string? Problem(string field, decimal? value, decimal max) => value switch
    {
        null => null,
        { } v when v < 0 || v > max => $"'{field}' must be between 0 and {max.ToString(System.Globalization.CultureInfo.InvariantCulture)}.",
        { } v when decimal.Round(v, Decimals) != v =>
            $"'{field}' has more than {Decimals} decimals, the most that is stored: {v.ToString(System.Globalization.CultureInfo.InvariantCulture)} "
            + $"would be stored as {decimal.Round(v, Decimals, MidpointRounding.AwayFromZero).ToString("0.000000", System.Globalization.CultureInfo.InvariantCulture)}. "
            + "Send an amount with at most 6 decimals.",
        _ => null,
    };
}

public sealed class CreateKeyRequestValidator : AbstractValidator<CreateKeyRequest>
{
    public CreateKeyRequestValidator()
    {
        RuleFor(r => r.Name).NotEmpty().MaximumLength(200).Must(Limits.Printable).WithMessage("'name' must not contain control characters.");
        RuleForEach(r => r.AllowedModels).NotEmpty().Must(Limits.Printable);
        RuleFor(r => r.Owner).MaximumLength(200).Must(Limits.Printable);
        RuleForEach(r => r.Tags).NotEmpty().MaximumLength(100).Must(Limits.Printable);
        RuleFor(r => r.DailyBudgetUsd).Money("daily_budget_usd", Limits.MaxUsd);
        RuleFor(r => r.HardCapUsd).Money("hard_cap_usd", Limits.MaxUsd);
        RuleFor(r => r.MonthlyBudgetUsd).Money("monthly_budget_usd", Limits.MaxUsd);
        RuleFor(r => r.EndUserDailyBudgetUsd).Money("end_user_daily_budget_usd", Limits.MaxUsd);
        RuleFor(r => r.DowngradeModel).MaximumLength(200).Must(Limits.Printable);
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
        RuleFor(r => r.InputPricePerMTok).Money("input_price_per_mtok", Limits.MaxPricePerMTok);
        RuleFor(r => r.OutputPricePerMTok).Money("output_price_per_mtok", Limits.MaxPricePerMTok);
        RuleFor(r => r.CachedInputPricePerMTok).Money("cached_input_price_per_mtok", Limits.MaxPricePerMTok);
        RuleFor(r => r.CacheWritePricePerMTok).Money("cache_write_price_per_mtok", 2 * Limits.MaxPricePerMTok);
        RuleFor(r => r.CacheWrite1hPricePerMTok).Money("cache_write_1h_price_per_mtok", 2 * Limits.MaxPricePerMTok);
        RuleFor(r => r.ContextWindow).GreaterThan(0);
        RuleFor(r => r.MaxOutputTokens).GreaterThan(0);
        RuleFor(r => r.TtftTimeoutMs).InclusiveBetween(100, 600_000);
        RuleFor(r => r.TimeoutMs).InclusiveBetween(100, 3_600_000);
        RuleFor(r => r.Fallbacks).Must(f => f!.Count <= Catalog.ModelCatalog.MaxCandidates - 1).When(r => r.Fallbacks is not null)
            .WithMessage($"'fallbacks' holds at most {Catalog.ModelCatalog.MaxCandidates - 1} aliases.");
        RuleForEach(r => r.Fallbacks).NotEmpty().Must((r, f) => f != r.Alias).WithMessage("A model cannot be its own fallback.");
    }
}
