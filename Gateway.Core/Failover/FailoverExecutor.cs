using Gateway.Core.Catalog;
using Gateway.Core.Providers;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;

namespace Gateway.Core.Failover;

/// <summary>One candidate tried for a request: where, how it ended, how long it took.</summary>
public sealed record AttemptRecord(string Provider, string Model, string Outcome, int Ms);

/// <summary>The outcome of walking a candidate chain, with every attempt made.</summary>
public readonly record struct FailoverResult<T>(T? Value, ModelRoute? Route, UpstreamFailure? Failure, IReadOnlyList<AttemptRecord> Attempts)
    where T : class;

/// <summary>
/// Walks a model's candidate chain (the model, then its fallbacks): a provider whose circuit is open or
/// that is cooling down after a Retry-After is skipped without a call; 429, 5xx, 529, timeouts,
/// connection failures and broken streams move to the next candidate at once (no retry of the same
/// provider in one request); a failure caused by the request itself goes back to the caller.
/// </summary>
public sealed class FailoverExecutor(ProviderHealth health, TimeProvider time)
{
    public async Task<FailoverResult<T>> RunAsync<T>(IReadOnlyList<ModelRoute> chain, Func<ModelRoute, CancellationToken, Task<UpstreamResult<T>>> attempt,
        CancellationToken ct) where T : class
    {
        var first = chain[0];
        var attempts = new List<AttemptRecord>();
        UpstreamFailure? last = null;
        foreach (var route in chain)
        {
            var provider = route.Provider.Name;
            if (health.IsCoolingDown(provider))
            {
                attempts.Add(new AttemptRecord(provider, route.UpstreamModel, "cooling_down", 0));
                continue;
            }

            var started = time.GetTimestamp();
            var context = ResilienceContextPool.Shared.Get(ct);
            Outcome<UpstreamResult<T>> outcome;
            try
            {
                // The provider's breaker around the model's: one failing model opens its own circuit first;
                // the provider's opens when its calls fail overall.
                outcome = await health.Pipeline(provider).ExecuteOutcomeAsync(static (ctx, state) =>
                    state.health.Pipeline($"{state.route.Provider.Name}/{state.route.UpstreamModel}").ExecuteOutcomeAsync(static async (inner, s) =>
                    {
                        try
                        {
                            return Outcome.FromResult(await s.attempt(s.route, inner.CancellationToken));
                        }
                        catch (Exception ex)
                        {
                            return Outcome.FromException<UpstreamResult<T>>(ex);
                        }
                    }, ctx, state), context, (attempt, route, health));
            }
            finally
            {
                ResilienceContextPool.Shared.Return(context);
            }
            var ms = (int)time.GetElapsedTime(started).TotalMilliseconds;

            if (outcome.Exception is BrokenCircuitException or IsolatedCircuitException)
            {
                attempts.Add(new AttemptRecord(provider, route.UpstreamModel, "circuit_open", 0));
                continue;
            }
            outcome.ThrowIfException(); // the client went away, or a bug
            var result = outcome.Result;
            if (result.Failure is not { } failure)
            {
                attempts.Add(new AttemptRecord(provider, route.UpstreamModel, "ok", ms));
                return new FailoverResult<T>(result.Value, route, null, attempts);
            }
            attempts.Add(new AttemptRecord(provider, route.UpstreamModel, failure.Outcome, ms));
            if (!failure.ShouldFailOver) return new FailoverResult<T>(null, route, failure, attempts);
            if (failure.RetryAfter is { } wait) health.CoolDown(provider, wait);
            last = failure;
        }
        return new FailoverResult<T>(null, null,
            last ?? new UpstreamFailure(UpstreamFailureKind.Overloaded, first.Provider.Name, "no provider can take the request now (circuits open or cooling down)"),
            attempts);
    }
}

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.SnakeCaseLower)]
[System.Text.Json.Serialization.JsonSerializable(typeof(IReadOnlyList<AttemptRecord>))]
internal sealed partial class AttemptJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
