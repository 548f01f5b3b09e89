using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Gateway.Core.Metering;
using Gateway.Core.Providers;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;

namespace Gateway.Core.Failover;

/// <summary>
/// Circuit breakers (Polly) per provider and per provider+model (key "provider/model"), and Retry-After
/// cool-downs per provider+model (a 429: providers limit each model on its own) or per provider (any other failure
/// that names a wait), kept by each instance for itself.
/// A breaker counts the failures that move a request to the next candidate (5xx, timeouts, connection failures, refused
/// credentials, broken streams) and ignores the caller's own mistakes and 429s (those are limits, handled by cool-downs).
/// </summary>
/// <remarks>
/// Polly moves an open circuit to half-open only when a call goes through it after the break. So a candidate is skipped
/// before the call only while its break lasts (<see cref="Check"/>); after that the call goes through the breaker, which lets
/// one probe through (half-open) and refuses the others until the probe has its answer: success closes, failure re-opens.
/// </remarks>
public sealed partial class ProviderHealth
{
    // Lazy: concurrent first calls to a provider must build its breaker exactly once.
    private readonly ConcurrentDictionary<string, Lazy<Breaker>> _breakers = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _coolDowns = new(StringComparer.Ordinal);
    private readonly IOptions<FailoverOptions> _options;
    private readonly TimeProvider _time;
    private readonly ILogger<ProviderHealth> _log;
    private readonly Counter<long> _transitions;
    private readonly Counter<long> _coolDownsStarted;

    public ProviderHealth(IOptions<FailoverOptions> options, TimeProvider time, ILogger<ProviderHealth> log, IMeterFactory meters)
    {
        _options = options;
        _time = time;
        _log = log;
        var meter = meters.Create(GatewayMetrics.MeterName);
        _transitions = meter.CreateCounter<long>("gateway.provider.circuit_transitions", "{transition}",
            "Circuit breaker transitions on this instance, by provider, model (* for the provider's own breaker) and the state entered");
        _coolDownsStarted = meter.CreateCounter<long>("gateway.provider.cool_downs", "{cool-down}",
            "Cool-downs started after a provider named a wait (Retry-After and the like), by provider and model (* for the whole provider)");
    }

    /// <summary>One breaker and what it is doing now; <see cref="OpenUntil"/> is when its break ends (a probe is due).</summary>
    private sealed class Breaker(ResiliencePipeline pipeline, CircuitBreakerStateProvider state)
    {
        public ResiliencePipeline Pipeline { get; } = pipeline;
        public CircuitBreakerStateProvider State { get; } = state;

        // Read by every request, written by Polly's callbacks: one atomic long, never a torn DateTimeOffset.
        private long _openUntilTicks;

        public DateTimeOffset OpenUntil
        {
            get => new(Interlocked.Read(ref _openUntilTicks), TimeSpan.Zero);
            set => Interlocked.Exchange(ref _openUntilTicks, value.UtcTicks);
        }
    }

    public ResiliencePipeline Pipeline(string key) => Get(key).Pipeline;

    private Breaker Get(string key) =>
        (_breakers.TryGetValue(key, out var known) ? known // no factory delegate per call on the hot path
            : _breakers.GetOrAdd(key, static (k, self) => new Lazy<Breaker>(() => self.Build(k)), this))
        .Value;

    private Breaker Build(string key)
    {
        var settings = _options.Value;
        var state = new CircuitBreakerStateProvider();
        Breaker? breaker = null;
        var pipeline = new ResiliencePipelineBuilder { TimeProvider = _time }
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                FailureRatio = settings.BreakerFailureRatio,
                MinimumThroughput = settings.BreakerMinimumThroughput,
                SamplingDuration = TimeSpan.FromSeconds(settings.BreakerSamplingSeconds),
                BreakDuration = TimeSpan.FromSeconds(settings.BreakerBreakSeconds),
                StateProvider = state,
                // A client's abort says nothing about the provider, except that a half-open probe did not
                // prove it healthy; a model's open circuit (inner breaker) is not a provider failure. A 429 is not ill health
                // but a limit with its own signal: it sets a cool-down of the model when the provider names a wait. A failure
                // that ends the chain for the key's sake (a capped key with no room for another billed call) is still the provider's.
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception switch
                {
                    null => args.Outcome.Result is IUpstreamResult
                        { Failure.Kind: not (UpstreamFailureKind.CallerError or UpstreamFailureKind.RateLimited) },
                    OperationCanceledException => state.CircuitState == CircuitState.HalfOpen,
                    BrokenCircuitException => false,
                    _ => true,
                }),
                OnOpened = args =>
                {
                    breaker!.OpenUntil = _time.GetUtcNow() + args.BreakDuration;
                    Transition(key, "open", Reason(args.Outcome), breaker.OpenUntil);
                    return default;
                },
                OnHalfOpened = _ =>
                {
                    Transition(key, "half_open", "the break is over: one probe call goes through", null);
                    return default;
                },
                OnClosed = args =>
                {
                    breaker!.OpenUntil = default;
                    Transition(key, "closed", "a call succeeded", null);
                    return default;
                },
            })
            .Build();
        return breaker = new Breaker(pipeline, state);
    }

    private static string Reason(Outcome<object> outcome) => outcome.Exception is { } ex ? ex.GetType().Name
        : outcome.Result is IUpstreamResult { Failure: { } failure } ? failure.Outcome : "failures";

    private void Transition(string key, string entered, string reason, DateTimeOffset? until)
    {
        var (provider, model) = Split(key);
        Log.CircuitChanged(_log, provider, model, entered, reason, until);
        _transitions.Add(1, new KeyValuePair<string, object?>("provider", provider), new KeyValuePair<string, object?>("model", model),
            new KeyValuePair<string, object?>("state", entered));
    }

    private static (string Provider, string Model) Split(string key) =>
        key.IndexOf('/', StringComparison.Ordinal) is var slash and >= 0 ? (key[..slash], key[(slash + 1)..]) : (key, "*");

    /// <summary>
    /// Whether a candidate can be called now: null when it can (its circuit is closed, or its break is over and the call may
    /// be the probe); else the skip's name and when that ends (<see cref="SkipReasons.CircuitOpen"/>: the probe is due; <see cref="SkipReasons.CoolingDown"/>:
    /// the provider's wait ends).
    /// </summary>
    public (string Reason, DateTimeOffset Until)? Check(string provider, string modelKey)
    {
        var now = _time.GetUtcNow();
        var open = Later(OpenUntil(provider, now), OpenUntil(modelKey, now));
        if (open is { } breakEnds) return (SkipReasons.CircuitOpen, breakEnds);
        var cooling = Later(CoolingUntil(provider, now), CoolingUntil(modelKey, now));
        return cooling is { } waitEnds ? (SkipReasons.CoolingDown, waitEnds) : null;
    }

    private static DateTimeOffset? Later(DateTimeOffset? a, DateTimeOffset? b) => a is null ? b : b is null ? a : a > b ? a : b;

    // Open and still in its break. Half-open (a probe under way) is left to the breaker, which refuses the call.
    private DateTimeOffset? OpenUntil(string key, DateTimeOffset now) =>
        _breakers.TryGetValue(key, out var lazy) && lazy.IsValueCreated && lazy.Value is var breaker
        && breaker.State.CircuitState is CircuitState.Open or CircuitState.Isolated && breaker.OpenUntil > now
            ? breaker.OpenUntil : null;

    private DateTimeOffset? CoolingUntil(string key, DateTimeOffset now) =>
        _coolDowns.TryGetValue(key, out var until) && until > now ? until : null;

    /// <summary>
    /// A failure seen outside a call (a stream that broke after its first token), judged as a call's would be: a 429 (a
    /// provider's in-stream rate-limit error) counts in no breaker and cools the model down if it named a wait; anything else
    /// counts against both breakers.
    /// </summary>
    public async ValueTask ReportFailureAsync(UpstreamFailure failure, string modelKey)
    {
        if (failure.Kind == UpstreamFailureKind.RateLimited)
        {
            CoolDown(failure, modelKey);
            return;
        }
        var failed = new UpstreamResult<object>(null, failure);
        foreach (var key in (string[])[modelKey, failure.Provider])
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

    /// <summary>
    /// A provider that named a wait is skipped until then (bounded by MaxRetryAfterSeconds): a 429 cools down only the
    /// model it answered for (<paramref name="modelKey"/>), any other failure the whole provider.
    /// </summary>
    /// <returns>The wait as bounded (what the client is told), or null when the provider named none.</returns>
    public TimeSpan? CoolDown(UpstreamFailure failure, string modelKey)
    {
        if (failure.RetryAfter is not { } retryAfter) return null;
        var key = failure.Kind == UpstreamFailureKind.RateLimited ? modelKey : failure.Provider;
        var bounded = TimeSpan.FromSeconds(Math.Min(retryAfter.TotalSeconds, _options.Value.MaxRetryAfterSeconds));
        var now = _time.GetUtcNow();
        var started = !_coolDowns.TryGetValue(key, out var earlier) || earlier <= now; // a longer wait extends it quietly
        _coolDowns[key] = now + bounded;
        if (!started) return bounded;
        var (provider, model) = Split(key);
        Log.CoolingDown(_log, provider, model, failure.Outcome, now + bounded);
        _coolDownsStarted.Add(1, new KeyValuePair<string, object?>("provider", provider), new KeyValuePair<string, object?>("model", model));
        return bounded;
    }

    /// <summary>
    /// Every breaker and cool-down known so far ("provider" or "provider/model"), with its state: "Closed", "Open", "HalfOpen"
    /// (the break is over: the next call is a probe, or one is under way), "Isolated" or "CoolingDown".
    /// </summary>
    public IReadOnlyDictionary<string, string> States()
    {
        var now = _time.GetUtcNow();
        var states = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, lazy) in _breakers)
        {
            if (!lazy.IsValueCreated) continue;
            var breaker = lazy.Value;
            var state = breaker.State.CircuitState;
            states[key] = state switch
            {
                CircuitState.Open when breaker.OpenUntil <= now => nameof(CircuitState.HalfOpen),
                CircuitState.Closed when CoolingUntil(key, now) is not null => "CoolingDown",
                _ => state.ToString(),
            };
        }
        foreach (var (key, until) in _coolDowns)
            if (until > now && !states.ContainsKey(key)) states[key] = "CoolingDown";
        return states;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1701, Level = LogLevel.Information,
            Message = "Circuit of provider {Provider} model {Model} is now {State}: {Reason}; until {Until}")]
        public static partial void CircuitChanged(ILogger logger, string provider, string model, string state, string reason, DateTimeOffset? until);

        [LoggerMessage(EventId = 1702, Level = LogLevel.Information,
            Message = "Provider {Provider} model {Model} cools down after {Reason} until {Until}")]
        public static partial void CoolingDown(ILogger logger, string provider, string model, string reason, DateTimeOffset until);
    }
}
