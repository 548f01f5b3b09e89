using System.ComponentModel.DataAnnotations;

namespace Gateway.Core.Failover;

/// <summary>Circuit breakers and deadlines (section <c>Gateway:Failover</c>).</summary>
public sealed class FailoverOptions
{
    public const string SectionName = "Gateway:Failover";

    /// <summary>Share of failed calls, over the sampling window, that opens a provider's circuit.</summary>
    [Range(0.01, 1.0)]
    public double BreakerFailureRatio { get; set; } = 0.5;

    /// <summary>Calls needed in the window before the ratio counts.</summary>
    [Range(2, 10_000)]
    public int BreakerMinimumThroughput { get; set; } = 5;

    [Range(1, 3600)]
    public int BreakerSamplingSeconds { get; set; } = 30;

    /// <summary>How long an open circuit skips the provider before one probe call is let through (half-open).</summary>
    [Range(1, 3600)]
    public int BreakerBreakSeconds { get; set; } = 30;

    /// <summary>Time to first token for streams when the model row sets none.</summary>
    [Range(100, 600_000)]
    public int DefaultTtftTimeoutMs { get; set; } = 10_000;

    /// <summary>
    /// Time to first token for non-streaming requests (called streaming and assembled) when the model row sets none: longer than
    /// the streams' default, as reasoning models may think silently for a while and the client did not ask for a fast first token.
    /// </summary>
    [Range(100, 3_600_000)]
    public int DefaultNonStreamingTtftTimeoutMs { get; set; } = 120_000;

    /// <summary>Longest cool-down a provider's Retry-After may impose.</summary>
    [Range(1, 86_400)]
    public int MaxRetryAfterSeconds { get; set; } = 300;
}
