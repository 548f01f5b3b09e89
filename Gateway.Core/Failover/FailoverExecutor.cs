using Gateway.Core.Catalog;
using Gateway.Core.Metering;
using Gateway.Core.Providers;
using Gateway.Core.Telemetry;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;

namespace Gateway.Core.Failover;

/// <summary>One candidate tried for a request: where, how it ended, how long it took.</summary>
public sealed record AttemptRecord(string Provider, string Model, string Outcome, int Ms);

/// <summary>
/// The outcome of walking a candidate chain, with every attempt made. <paramref name="Route"/> served (or,
/// on failure, is the last candidate called); <paramref name="Billed"/> holds usage that failed attempts
/// reported, to be charged at their own prices.
/// </summary>
public readonly record struct FailoverResult<T>(T? Value, ModelRoute? Route, UpstreamFailure? Failure, IReadOnlyList<AttemptRecord> Attempts,
    IReadOnlyList<(ModelRoute Route, TokenUsage Usage)> Billed) where T : class
{
    /// <summary>Candidates actually called (skipped ones excluded).</summary>
    public int Calls => Attempts.Count(a => !SkipReasons.IsSkip(a.Outcome));
}

/// <summary>
/// Walks a model's candidate chain (the model, then its fallbacks): a candidate whose circuit is open (in its break) or
/// that is cooling down after a Retry-After is skipped without a call while another can be tried; 429, 5xx, 529, timeouts,
/// connection failures and broken streams move to the next candidate at once (no retry of the same
/// provider in one request); a failure caused by the request itself goes back to the caller. Each call is an
/// <see cref="UpstreamAttempt"/> (span and GenAI metrics); a stream's goes on with the <see cref="PrimedStream"/>.
/// </summary>
public sealed class FailoverExecutor(ProviderHealth health, TimeProvider time, GatewayMetrics metrics)
{
    /// <param name="operation"><c>gen_ai.operation.name</c>: <see cref="GatewayTelemetry.Chat"/> or <see cref="GatewayTelemetry.Embeddings"/>.</param>
    /// <param name="mayCallAgain">Asked before a further candidate is called after an attempt the provider billed (its route and
    /// usage): false ends the walk with that attempt's failure (a capped key whose reservation cannot be topped up).</param>
    public async Task<FailoverResult<T>> RunAsync<T>(string operation, IReadOnlyList<ModelRoute> chain,
        Func<ModelRoute, CancellationToken, Task<UpstreamResult<T>>> attempt, CancellationToken ct,
        Func<ModelRoute, TokenUsage, bool>? mayCallAgain = null) where T : class
    {
        var first = chain[0];
        var attempts = new List<AttemptRecord>(chain.Count);
        var billed = new List<(ModelRoute, TokenUsage)>();
        var downProviders = new HashSet<string>(StringComparer.Ordinal);
        UpstreamFailure? last = null;
        ModelRoute? lastRoute = null;
        DateTimeOffset? nextChance = null; // the earliest end of a skip: a client refused for skips only is told when to come back
        for (var i = 0; i < chain.Count; i++)
        {
            var route = chain[i];
            var provider = route.Provider.Name;
            var modelKey = ProviderHealth.ModelKey(provider, route.UpstreamModel);
            // Skipped before the call, so the breakers record nothing. A skip only diverts: a candidate cooling down after the
            // provider named a wait is still called when no other candidate is ready and its wait ends first (the provider
            // decides, not a stale guess); no second call to a provider that just failed as a whole in this request.
            var skipped = downProviders.Contains(provider) ? SkipReasons.ProviderFailed : null;
            if (skipped is null && health.Check(provider, modelKey) is { } blocked
                && (blocked.Reason == SkipReasons.CircuitOpen || ReadyOrSoonerAfter(chain, i, blocked.Until, downProviders)))
            {
                skipped = blocked.Reason;
                nextChance = nextChance is { } known && known < blocked.Until ? known : blocked.Until;
            }
            if (skipped is not null)
            {
                attempts.Add(new AttemptRecord(provider, route.UpstreamModel, skipped, 0));
                GatewayTelemetry.Skipped(provider, route.UpstreamModel, skipped);
                continue;
            }

            var started = time.GetTimestamp();
            var call = new UpstreamAttempt(operation, route, typeof(T) == typeof(PrimedStream), metrics, time);
            var context = ResilienceContextPool.Shared.Get(ct);
            Outcome<UpstreamResult<T>> outcome;
            try
            {
                // The provider's breaker around the model's: one failing model opens its own circuit first;
                // the provider's opens when its calls fail overall.
                outcome = await health.Pipeline(provider).ExecuteOutcomeAsync(static (ctx, state) =>
                    state.health.Pipeline(state.modelKey).ExecuteOutcomeAsync(static async (inner, s) =>
                    {
                        try
                        {
                            return Outcome.FromResult(await s.attempt(s.route, inner.CancellationToken));
                        }
                        catch (Exception ex)
                        {
                            return Outcome.FromException<UpstreamResult<T>>(ex);
                        }
                    }, ctx, state), context, (attempt, route, health, modelKey));
            }
            finally
            {
                ResilienceContextPool.Shared.Return(context);
            }
            var ms = (int)time.GetElapsedTime(started).TotalMilliseconds;

            if (outcome.Exception is BrokenCircuitException or IsolatedCircuitException)
            {
                // Another request's probe is under way (half-open), or the circuit opened meanwhile.
                call.Refused(SkipReasons.CircuitOpen);
                attempts.Add(new AttemptRecord(provider, route.UpstreamModel, SkipReasons.CircuitOpen, 0));
                var probe = time.GetUtcNow() + ((outcome.Exception as BrokenCircuitException)?.RetryAfter ?? TimeSpan.FromSeconds(1));
                nextChance = nextChance is { } known && known < probe ? known : probe;
                continue;
            }
            if (outcome.Exception is { } thrown)
            {
                call.Failed(thrown.GetType().FullName ?? "_OTHER");
                call.End();
                outcome.ThrowIfException(); // the client went away, or a bug
            }
            var result = outcome.Result;
            if (result.Failure is not { } failure)
            {
                attempts.Add(new AttemptRecord(provider, route.UpstreamModel, "ok", ms));
                Answered(call, operation, result.Value);
                return new FailoverResult<T>(result.Value, route, null, attempts, billed);
            }
            call.Failed(failure.Outcome, failure.Usage);
            call.End();
            attempts.Add(new AttemptRecord(provider, route.UpstreamModel, failure.Outcome, ms));
            if (failure.Usage is { } used) billed.Add((route, used));
            if (!failure.ShouldFailOver) return new FailoverResult<T>(null, route, failure, attempts, billed);
            if (health.CoolDown(failure, modelKey) is { } bounded) failure = failure with { RetryAfter = bounded }; // the client hears the bounded wait
            // The provider billed this attempt: another call costs more than the request reserved, so it needs room for that first.
            if (failure.Usage is { } spent && i < chain.Count - 1 && mayCallAgain is not null && !mayCallAgain(route, spent))
                return new FailoverResult<T>(null, route, failure, attempts, billed);
            // A 429 limits one model (providers rate-limit per model), so the provider's other models stay candidates.
            if (failure.Kind is UpstreamFailureKind.Connect or UpstreamFailureKind.Overloaded
                or UpstreamFailureKind.Timeout or UpstreamFailureKind.AuthRejected)
                downProviders.Add(provider);
            last = failure;
            lastRoute = route;
        }
        return new FailoverResult<T>(null, lastRoute,
            last ?? new UpstreamFailure(UpstreamFailureKind.Overloaded, first.Provider.Name, "no provider can take the request now (circuits open or cooling down)")
            {
                RetryAfter = nextChance is { } at && at - time.GetUtcNow() is var wait && wait > TimeSpan.Zero ? wait : TimeSpan.FromSeconds(1),
            },
            attempts, billed);
    }

    // Whether a later candidate can be called now, or is cooling down but its wait ends before <paramref name="until"/>.
    private bool ReadyOrSoonerAfter(IReadOnlyList<ModelRoute> chain, int index, DateTimeOffset until, HashSet<string> downProviders)
    {
        for (var j = index + 1; j < chain.Count; j++)
        {
            var provider = chain[j].Provider.Name;
            if (downProviders.Contains(provider)) continue;
            var check = health.Check(provider, ProviderHealth.ModelKey(provider, chain[j].UpstreamModel));
            if (check is null || check.Value.Reason == SkipReasons.CoolingDown && check.Value.Until < until) return true;
        }
        return false;
    }

    // A stream's call goes on until the stream is disposed; its first token is here (PrimedStream opens on it).
    private static void Answered(UpstreamAttempt call, string operation, object? value)
    {
        switch (value)
        {
            case PrimedStream stream:
                call.FirstChunk();
                stream.Adopt(call);
                break;
            case UpstreamCompletion completion:
                call.Answered(completion, operation == GatewayTelemetry.Chat);
                call.End();
                break;
            default:
                call.End();
                break;
        }
    }
}

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.SnakeCaseLower)]
[System.Text.Json.Serialization.JsonSerializable(typeof(IReadOnlyList<AttemptRecord>))]
internal sealed partial class AttemptJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
