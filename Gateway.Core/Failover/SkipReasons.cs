namespace Gateway.Core.Failover;

/// <summary>
/// Why a candidate was passed over without a call: the <see cref="AttemptRecord.Outcome"/> of a skip. These are wire values
/// (stored in <c>usage_events.attempt_trail</c>, traced, named in the README), so they never change.
/// </summary>
public static class SkipReasons
{
    /// <summary>The candidate's circuit (provider or model) is open, or another request's probe is under way.</summary>
    public const string CircuitOpen = "circuit_open";

    /// <summary>The candidate's model or provider is waiting out a Retry-After.</summary>
    public const string CoolingDown = "cooling_down";

    /// <summary>The candidate's provider already failed as a whole in this request.</summary>
    public const string ProviderFailed = "provider_failed";

    /// <summary>Whether <paramref name="outcome"/> is a skip (no call made) rather than a call's outcome.</summary>
    public static bool IsSkip(string outcome) => outcome is CircuitOpen or CoolingDown or ProviderFailed;
}
