namespace Gateway.Core.Providers;

/// <summary>What a circuit breaker looks at in any attempt's outcome.</summary>
public interface IUpstreamResult
{
    UpstreamFailure? Failure { get; }
}

/// <summary>An attempt's outcome: a value, or an expected failure (exceptions are for bugs).</summary>
public readonly record struct UpstreamResult<T>(T? Value, UpstreamFailure? Failure) : IUpstreamResult where T : class
{
    public static implicit operator UpstreamResult<T>(T value) => new(value, null);
    public static implicit operator UpstreamResult<T>(UpstreamFailure failure) => new(null, failure);
}

/// <summary>
/// A non-streaming answer: an OpenAI body (chat.completion or embeddings list) and what it used.
/// <paramref name="Text"/> is the answer's text, kept only when the provider reported no usage (to
/// estimate it); <paramref name="UsageEstimated"/> says the adapter itself counted <paramref name="Usage"/>.
/// </summary>
public sealed record UpstreamCompletion(ReadOnlyMemory<byte> Body, TokenUsage? Usage, string? ServedModel, string Text = "", bool UsageEstimated = false)
{
    /// <summary>The answer as the upstream wrote it, for a request passed through in its own protocol (<see cref="Wire.NativeRequest"/>); else empty.</summary>
    public ReadOnlyMemory<byte> Native { get; init; }
}
