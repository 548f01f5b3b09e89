using FluentValidation;
using Gateway.Core.Secrets;

namespace Gateway.Core.Admin;

public sealed class CreateKeyRequestValidator : AbstractValidator<CreateKeyRequest>
{
    public CreateKeyRequestValidator()
    {
        RuleFor(r => r.Name).NotEmpty().MaximumLength(200);
        RuleForEach(r => r.AllowedModels).NotEmpty();
        RuleFor(r => r.DailyBudgetUsd).GreaterThanOrEqualTo(0);
        RuleFor(r => r.HardCapUsd).GreaterThanOrEqualTo(0);
        RuleFor(r => r.RpmLimit).GreaterThan(0);
        RuleFor(r => r.TpmLimit).GreaterThan(0);
    }
}

public sealed class ProviderRequestValidator : AbstractValidator<ProviderRequest>
{
    public static readonly string[] Protocols = ["openai", "anthropic", "gemini", "mock"];

    public ProviderRequestValidator()
    {
        RuleFor(r => r.Name).NotEmpty().MaximumLength(100).Matches("^[a-z0-9][a-z0-9._-]*$")
            .WithMessage("'name' must be lower-case letters, digits, '.', '_' or '-'.");
        RuleFor(r => r.Protocol).NotEmpty().Must(p => Protocols.Contains(p))
            .WithMessage($"'protocol' must be one of: {string.Join(", ", Protocols)}.");
        RuleFor(r => r.BaseUrl).NotEmpty().Must(u => Uri.TryCreate(u, UriKind.Absolute, out _))
            .WithMessage("'base_url' must be an absolute URL.");
        RuleFor(r => r.SecretRef).Must(s => SecretResolver.IsReference(s!) && !s!.StartsWith("enc:", StringComparison.Ordinal))
            .When(r => r.SecretRef is not null)
            .WithMessage("'secret_ref' must be 'env:NAME' or 'file:/path'; send a literal secret as 'secret' to store it encrypted.");
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
        RuleFor(r => r.Alias).NotEmpty().MaximumLength(200);
        RuleFor(r => r.Provider).NotEmpty();
        RuleFor(r => r.UpstreamModel).NotEmpty().MaximumLength(200);
        RuleFor(r => r.InputPricePerMtok).GreaterThanOrEqualTo(0);
        RuleFor(r => r.OutputPricePerMtok).GreaterThanOrEqualTo(0);
        RuleFor(r => r.CachedInputPricePerMtok).GreaterThanOrEqualTo(0);
        RuleFor(r => r.ContextWindow).GreaterThan(0);
        RuleFor(r => r.MaxOutputTokens).GreaterThan(0);
    }
}
