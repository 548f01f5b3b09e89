using FluentValidation;
using Gateway.Core.Admin;
using Gateway.Core.Secrets;

namespace Gateway.Core.Catalog;

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
        RuleFor(r => r.Alias).NotEmpty().MaximumLength(200).Must(AdminLimits.Printable).WithMessage("'alias' must not contain control characters.");
        RuleFor(r => r.Provider).NotEmpty();
        RuleFor(r => r.UpstreamModel).NotEmpty().MaximumLength(200).Must(AdminLimits.Printable).WithMessage("'upstream_model' must not contain control characters.");
        RuleFor(r => r.InputPricePerMTok).Money("input_price_per_mtok", AdminLimits.MaxPricePerMTok);
        RuleFor(r => r.OutputPricePerMTok).Money("output_price_per_mtok", AdminLimits.MaxPricePerMTok);
        RuleFor(r => r.CachedInputPricePerMTok).Money("cached_input_price_per_mtok", AdminLimits.MaxPricePerMTok);
        RuleFor(r => r.CacheWritePricePerMTok).Money("cache_write_price_per_mtok", 2 * AdminLimits.MaxPricePerMTok);
        RuleFor(r => r.CacheWrite1hPricePerMTok).Money("cache_write_1h_price_per_mtok", 2 * AdminLimits.MaxPricePerMTok);
        RuleFor(r => r.ContextWindow).GreaterThan(0);
        RuleFor(r => r.MaxOutputTokens).GreaterThan(0);
        RuleFor(r => r.TtftTimeoutMs).InclusiveBetween(100, 600_000);
        RuleFor(r => r.TimeoutMs).InclusiveBetween(100, 3_600_000);
        RuleFor(r => r.Fallbacks).Must(f => f!.Count <= ModelCatalog.MaxCandidates - 1).When(r => r.Fallbacks is not null)
            .WithMessage($"'fallbacks' holds at most {ModelCatalog.MaxCandidates - 1} aliases.");
        RuleForEach(r => r.Fallbacks).NotEmpty().Must((r, f) => f != r.Alias).WithMessage("A model cannot be its own fallback.");
    }
}
