using Gateway.Core.Errors;

namespace Gateway.Core.Guards;

/// <summary>The filter found something in a request it was on for: what it does about it, and the categories found.</summary>
public sealed record InjectionVerdict(InjectionAction Action, IReadOnlyList<string> Categories)
{
    /// <summary>The 400 to answer when the request is blocked; null when it is only flagged.</summary>
    public GatewayError? Refusal => Action == InjectionAction.Block ? GatewayError.PromptInjection(Categories) : null;
}
