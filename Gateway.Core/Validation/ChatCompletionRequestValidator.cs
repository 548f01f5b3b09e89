using System.Text.Json;
using FluentValidation;
using Gateway.Core.Wire;

namespace Gateway.Core.Validation;

/// <summary>
/// The request-level rules OpenAI documents for chat completions, the shapes of the fields the gateway keeps as raw
/// JSON (so no adapter meets a number where it reads a string), and the gateway's size limits (<see cref="GatewayOptions"/>).
/// </summary>
public sealed class ChatCompletionRequestValidator : AbstractValidator<ChatCompletionRequest>
{
    /// <summary>Longest <c>model</c> and <c>user</c>: aliases are at most 200 characters, and <c>user</c> is stored and indexed per row.</summary>
    public const int MaxIdentifierLength = 256;

    private static readonly HashSet<string> Roles = ["system", "developer", "user", "assistant", "tool", "function"];

    public ChatCompletionRequestValidator(GatewayOptions limits)
    {
        RuleLevelCascadeMode = CascadeMode.Stop;
        ClassLevelCascadeMode = CascadeMode.Stop;

        RuleFor(r => r.Model).NotEmpty().WithErrorCode("missing_required_parameter")
            .WithMessage("You must provide a model parameter.")
            .MaximumLength(MaxIdentifierLength).WithErrorCode("string_above_max_length")
            .WithMessage($"Invalid 'model': string too long. Expected a string with maximum length {MaxIdentifierLength}.");
        RuleFor(r => r.Messages).NotNull().WithErrorCode("missing_required_parameter")
            .WithMessage("Missing required parameter: 'messages'.")
            .Must(m => m!.Count > 0).WithErrorCode("empty_array")
            .WithMessage("Invalid 'messages': empty array. Expected an array with minimum length 1.")
            .Must(m => m!.Count <= limits.MaxMessages).WithErrorCode("array_above_max_length")
            .WithMessage(r => TooLong("messages", limits.MaxMessages, r.Messages!.Count))
            .Must(m => m!.TrueForAll(x => x is not null)).WithErrorCode("invalid_type")
            .WithMessage("Invalid 'messages': each message must be an object.")
            .Must(m => ContentParts(m!) <= limits.MaxContentParts).WithErrorCode("array_above_max_length")
            .WithMessage(r => $"Invalid 'messages': {ContentParts(r.Messages!)} content parts in all; this gateway takes at most {limits.MaxContentParts}.");
        RuleForEach(r => r.Messages).ChildRules(m =>
        {
            m.RuleFor(x => x.Role).NotEmpty().WithErrorCode("missing_required_parameter")
                .WithMessage("Each message needs a 'role'.")
                .Must(role => Roles.Contains(role!)).WithErrorCode("invalid_value")
                .WithMessage(x => $"Invalid value for 'role': '{x.Role}'. Supported values are: {string.Join(", ", Roles)}.");
            m.RuleFor(x => x.Content).Must(c => Is(c, JsonValueKind.String) || IsArrayOf(c, IsContentPart)).WithErrorCode("invalid_type")
                .WithMessage("Invalid type for 'content': expected a string, an array of content parts (objects with a string 'type'), or null.");
            m.RuleFor(x => x.ToolCalls).Must(c => IsArrayOf(c, e => e.ValueKind == JsonValueKind.Object)).WithErrorCode("invalid_type")
                .WithMessage("Invalid type for 'tool_calls': expected an array of objects.");
        }).OverridePropertyName("messages");
        RuleFor(r => r.User).MaximumLength(MaxIdentifierLength).WithErrorCode("string_above_max_length")
            .WithMessage($"Invalid 'user': string too long. Expected a string with maximum length {MaxIdentifierLength}.");
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
        RuleFor(r => r.Stop).Must(s => Is(s, JsonValueKind.String) || IsArrayOf(s, e => e.ValueKind == JsonValueKind.String)).WithErrorCode("invalid_type")
            .WithMessage("Invalid type for 'stop': expected a string or an array of strings.")
            .Must(s => Count(s) <= limits.MaxStopSequences).WithErrorCode("array_above_max_length")
            .WithMessage(r => TooLong("stop", limits.MaxStopSequences, Count(r.Stop)));
        RuleFor(r => r.Tools).Must(t => IsArrayOf(t, e => e.ValueKind == JsonValueKind.Object)).WithErrorCode("invalid_type")
            .WithMessage("Invalid type for 'tools': expected an array of objects.")
            .Must(t => Count(t) <= limits.MaxTools).WithErrorCode("array_above_max_length")
            .WithMessage(r => TooLong("tools", limits.MaxTools, Count(r.Tools)));
        RuleFor(r => r.ToolChoice).Must(c => Is(c, JsonValueKind.String) || Is(c, JsonValueKind.Object)).WithErrorCode("invalid_type")
            .WithMessage("Invalid type for 'tool_choice': expected a string or an object.");
        RuleFor(r => r.ResponseFormat).Must(f => Is(f, JsonValueKind.Object)).WithErrorCode("invalid_type")
            .WithMessage("Invalid type for 'response_format': expected an object.");
        // Passed through untouched to OpenAI-compatible APIs, but native adapters translate them (Gemini's seed, penalties).
        RuleFor(r => Extra(r, "seed")).Must(s => s is not { } seed || seed.ValueKind == JsonValueKind.Null
                || seed.ValueKind == JsonValueKind.Number && seed.TryGetInt64(out _))
            .WithErrorCode("invalid_type").WithMessage("Invalid type for 'seed': expected an integer.").OverridePropertyName("seed");
        foreach (var penalty in (string[])["presence_penalty", "frequency_penalty"])
        {
            RuleFor(r => Extra(r, penalty)).Must(p => p is not { } value || value.ValueKind == JsonValueKind.Null
                    || value.ValueKind == JsonValueKind.Number && value.GetDouble() is >= -2 and <= 2)
                .WithErrorCode("invalid_value").WithMessage($"'{penalty}' must be a number between -2 and 2.").OverridePropertyName(penalty);
        }
    }

    private static JsonElement? Extra(ChatCompletionRequest request, string name) =>
        request.Extra is { } extra && extra.TryGetValue(name, out var value) ? value : null;

    private static string TooLong(string field, int max, int count) =>
        $"Invalid '{field}': array too long. Expected an array with maximum length {max}, but got an array with length {count} instead.";

    // Absent and JSON null pass every shape rule: "null" is how clients leave a field out.
    private static bool Is(JsonElement? value, JsonValueKind kind) => value is not { } v || v.ValueKind == JsonValueKind.Null || v.ValueKind == kind;

    private static bool IsArrayOf(JsonElement? value, Func<JsonElement, bool> item) =>
        value is not { } v || v.ValueKind == JsonValueKind.Null || v.ValueKind == JsonValueKind.Array && v.EnumerateArray().All(item);

    private static bool IsContentPart(JsonElement part) =>
        part.ValueKind == JsonValueKind.Object && part.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String;

    private static int Count(JsonElement? value) => value is { ValueKind: JsonValueKind.Array } array ? array.GetArrayLength() : 0;

    private static int ContentParts(List<ChatMessage> messages) => messages.Sum(m => m is null ? 0 : Count(m.Content));
}
