using FluentValidation;
using Gateway.Core.Wire;

namespace Gateway.Core.Validation;

/// <summary>The request-level rules OpenAI documents for chat completions.</summary>
public sealed class ChatCompletionRequestValidator : AbstractValidator<ChatCompletionRequest>
{
    private static readonly HashSet<string> Roles = ["system", "developer", "user", "assistant", "tool", "function"];

    public ChatCompletionRequestValidator()
    {
        RuleLevelCascadeMode = CascadeMode.Stop;
        ClassLevelCascadeMode = CascadeMode.Stop;

        RuleFor(r => r.Model).NotEmpty().WithErrorCode("missing_required_parameter")
            .WithMessage("You must provide a model parameter.");
        RuleFor(r => r.Messages).NotNull().WithErrorCode("missing_required_parameter")
            .WithMessage("Missing required parameter: 'messages'.")
            .Must(m => m!.Count > 0).WithErrorCode("empty_array")
            .WithMessage("Invalid 'messages': empty array. Expected an array with minimum length 1.")
            .Must(m => m!.TrueForAll(x => x is not null)).WithErrorCode("invalid_type")
            .WithMessage("Invalid 'messages': each message must be an object.");
        RuleForEach(r => r.Messages).ChildRules(m =>
        {
            m.RuleFor(x => x.Role).NotEmpty().WithErrorCode("missing_required_parameter")
                .WithMessage("Each message needs a 'role'.")
                .Must(role => Roles.Contains(role!)).WithErrorCode("invalid_value")
                .WithMessage(x => $"Invalid value for 'role': '{x.Role}'. Supported values are: {string.Join(", ", Roles)}.");
        }).OverridePropertyName("messages");
        RuleFor(r => r.Temperature).InclusiveBetween(0, 2).WithErrorCode("invalid_value")
            .WithMessage("'temperature' must be between 0 and 2.");
        RuleFor(r => r.TopP).InclusiveBetween(0, 1).WithErrorCode("invalid_value")
            .WithMessage("'top_p' must be between 0 and 1.");
        RuleFor(r => r.N).InclusiveBetween(1, 128).WithErrorCode("invalid_value")
            .WithMessage("'n' must be between 1 and 128.");
        RuleFor(r => r.MaxTokens).GreaterThan(0).WithErrorCode("invalid_value")
            .WithMessage("'max_tokens' must be at least 1.");
        RuleFor(r => r.MaxCompletionTokens).GreaterThan(0).WithErrorCode("invalid_value")
            .WithMessage("'max_completion_tokens' must be at least 1.");
        RuleFor(r => r.StreamOptions).Null().When(r => r.Stream != true).WithErrorCode("invalid_value")
            .WithMessage("'stream_options' is only allowed when 'stream' is true.");
    }
}
