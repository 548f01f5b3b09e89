using System.Collections.Concurrent;
using Gateway.Core.Providers;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;

namespace Gateway.Core.Failover;

/// <summary>
/// Circuit breakers (Polly) per provider and per provider+model (key "provider/model"), and Retry-After
/// cool-downs per provider, kept by each instance for itself.
/// A breaker counts the failures that move a request to the next candidate (429, 5xx, timeouts,
/// connection failures, broken streams) and ignores the caller's own mistakes.
/// </summary>
public sealed class ProviderHealth(IOptions<FailoverOptions> options, TimeProvider time)
{
    // Lazy: concurrent first calls to a provider must build its breaker exactly once.
    private readonly ConcurrentDictionary<string, Lazy<(ResiliencePipeline Pipeline, CircuitBreakerStateProvider State)>> _breakers = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _coolDowns = new(StringComparer.Ordinal);

    public ResiliencePipeline Pipeline(string provider) =>
        _breakers.GetOrAdd(provider, _ => new Lazy<(ResiliencePipeline, CircuitBreakerStateProvider)>(Build)).Value.Pipeline;

    private (ResiliencePipeline, CircuitBreakerStateProvider) Build()
    {
        var settings = options.Value;
        var state = new CircuitBreakerStateProvider();
        var pipeline = new ResiliencePipelineBuilder { TimeProvider = time }
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                FailureRatio = settings.BreakerFailureRatio,
                MinimumThroughput = settings.BreakerMinimumThroughput,
                SamplingDuration = TimeSpan.FromSeconds(settings.BreakerSamplingSeconds),
                BreakDuration = TimeSpan.FromSeconds(settings.BreakerBreakSeconds),
                StateProvider = state,
                // A model's open circuit (inner breaker) is not a provider failure.
                ShouldHandle = static args => ValueTask.FromResult(
                    args.Outcome.Exception is not (null or OperationCanceledException or BrokenCircuitException)
                    || args.Outcome.Result is IUpstreamResult { Failure.ShouldFailOver: true }),
            })
            .Build();
        return (pipeline, state);
    }

    /// <summary>A provider that answered 429 with Retry-After is skipped until then (bounded by MaxRetryAfterSeconds).</summary>
    public void CoolDown(string provider, TimeSpan retryAfter)
    {
        var bounded = TimeSpan.FromSeconds(Math.Min(retryAfter.TotalSeconds, options.Value.MaxRetryAfterSeconds));
        _coolDowns[provider] = time.GetUtcNow() + bounded;
    }

    public bool IsCoolingDown(string provider) => _coolDowns.TryGetValue(provider, out var until) && until > time.GetUtcNow();

    /// <summary>Every provider called so far, with its circuit state ("Closed", "Open", "HalfOpen", "Isolated") or "CoolingDown".</summary>
    public IReadOnlyDictionary<string, string> States() => _breakers.Where(b => b.Value.IsValueCreated).ToDictionary(
        b => b.Key, b => b.Value.Value.State.CircuitState is var state && state == CircuitState.Closed && IsCoolingDown(b.Key) ? "CoolingDown" : state.ToString(),
        StringComparer.Ordinal);
}
