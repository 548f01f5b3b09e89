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
        (_breakers.TryGetValue(provider, out var known) ? known // no factory delegate per call on the hot path
            : _breakers.GetOrAdd(provider, static (_, self) => new Lazy<(ResiliencePipeline, CircuitBreakerStateProvider)>(self.Build), this))
        .Value.Pipeline;

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
                // A client's abort says nothing about the provider, except that a half-open probe did not
                // prove it healthy; a model's open circuit (inner breaker) is not a provider failure.
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception switch
                {
                    null => args.Outcome.Result is IUpstreamResult { Failure.ShouldFailOver: true },
                    OperationCanceledException => state.CircuitState == CircuitState.HalfOpen,
                    BrokenCircuitException => false,
                    _ => true,
                }),
            })
            .Build();
        return (pipeline, state);
    }

    /// <summary>Whether calls to this breaker key are being refused right now (open or isolated).</summary>
    public bool IsOpen(string key) =>
        _breakers.TryGetValue(key, out var breaker) && breaker.IsValueCreated
        && breaker.Value.State.CircuitState is CircuitState.Open or CircuitState.Isolated;

    /// <summary>Counts a failure seen outside a call (a stream that broke after its first token) against both breakers.</summary>
    public async ValueTask ReportFailureAsync(string provider, string modelKey)
    {
        var failed = new UpstreamResult<object>(null, new UpstreamFailure(UpstreamFailureKind.Protocol, provider, "broke mid-stream"));
        foreach (var key in (string[])[modelKey, provider])
        {
            var context = ResilienceContextPool.Shared.Get();
            try
            {
                await Pipeline(key).ExecuteOutcomeAsync(static (_, result) => ValueTask.FromResult(Outcome.FromResult(result)), context, failed);
            }
            finally
            {
                ResilienceContextPool.Shared.Return(context);
            }
        }
    }

    public static string ModelKey(string provider, string upstreamModel) => $"{provider}/{upstreamModel}";

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
