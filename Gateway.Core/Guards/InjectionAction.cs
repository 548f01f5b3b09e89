namespace Gateway.Core.Guards;

/// <summary>
/// What the prompt-injection filter does with a request it finds suspicious. Ordered from least to most strict:
/// where the gateway, a key and a routing rule each set one, the strictest applies.
/// </summary>
public enum InjectionAction
{
    /// <summary>Nothing is scanned.</summary>
    Off = 0,

    /// <summary>Served normally; the usage row records the categories found and the answer carries <c>x-gateway-injection: flagged</c>.</summary>
    Flag = 1,

    /// <summary>Refused with 400 <c>prompt_injection_detected</c> (metered).</summary>
    Block = 2,
}
