using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.RateLimiting;
using Gateway.Core.Errors;
using Gateway.Core.Keys;

namespace Gateway.Core.Limits;

/// <summary>What a request may be told of its key's limits (OpenAI's x-ratelimit-* headers).</summary>
public sealed record RateLimitState(int? RequestLimit, int? RequestsRemaining, int? TokenLimit, int? TokensRemaining);

/// <summary>
/// Per-key requests-per-minute and tokens-per-minute limits (System.Threading.RateLimiting sliding
/// windows of one minute in six segments). Limits are per gateway instance: with N instances a key
/// can reach N times its limits (budgets, unlike these, hold across instances).
/// A request's token cost is its estimated prompt plus its output limit, as OpenAI counts it.
/// </summary>
public sealed class KeyRateLimiter
{
    private static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    private readonly ConcurrentDictionary<(Guid Key, string Kind), (int Limit, RateLimiter Limiter)> _limiters = new();

    /// <summary>Takes one request and <paramref name="tokens"/> tokens from the key's limits, or says why not.</summary>
    public (RateLimitState State, GatewayError? Refused) TryAcquire(GatewayKey key, Func<int> tokens)
    {
        if (key.RpmLimit is null && key.TpmLimit is null) return (new RateLimitState(null, null, null, null), null);
        int? requestsLeft = null, tokensLeft = null;
        if (key.RpmLimit is { } rpm)
        {
            var limiter = For(key.Id, "requests", rpm);
            using var lease = limiter.AttemptAcquire(1);
            if (!lease.IsAcquired) return (new RateLimitState(rpm, 0, key.TpmLimit, null), Refused("requests", rpm, lease));
            requestsLeft = (int)(limiter.GetStatistics()?.CurrentAvailablePermits ?? 0);
        }
        if (key.TpmLimit is { } tpm)
        {
            var cost = tokens();
            if (cost > tpm)
            {
                return (new RateLimitState(key.RpmLimit, requestsLeft, tpm, null), new GatewayError(429,
                    $"This request needs about {cost} tokens, more than this key's limit of {tpm} tokens per minute.",
                    "tokens", null, "rate_limit_exceeded"));
            }
            var limiter = For(key.Id, "tokens", tpm);
            using var lease = limiter.AttemptAcquire(Math.Max(cost, 1));
            if (!lease.IsAcquired) return (new RateLimitState(key.RpmLimit, requestsLeft, tpm, 0), Refused("tokens", tpm, lease));
            tokensLeft = (int)(limiter.GetStatistics()?.CurrentAvailablePermits ?? 0);
        }
        return (new RateLimitState(key.RpmLimit, requestsLeft, key.TpmLimit, tokensLeft), null);
    }

    // A limit changed by an admin takes effect with a fresh window.
    private RateLimiter For(Guid key, string kind, int limit)
    {
        var entry = _limiters.AddOrUpdate((key, kind), _ => (limit, Create(limit)),
            (_, existing) => existing.Limit == limit ? existing : (limit, Create(limit)));
        return entry.Limiter;
    }

    private static SlidingWindowRateLimiter Create(int limit) => new(new SlidingWindowRateLimiterOptions
    {
        PermitLimit = limit,
        Window = Window,
        SegmentsPerWindow = 6,
        QueueLimit = 0,
        AutoReplenishment = true,
    });

    private static GatewayError Refused(string kind, int limit, RateLimitLease lease)
    {
        var retry = lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromSeconds(10);
        return new GatewayError(429,
            $"Rate limit reached: this key may use {limit} {kind} per minute. Try again in {Math.Ceiling(retry.TotalSeconds).ToString(CultureInfo.InvariantCulture)} s.",
            kind, null, "rate_limit_exceeded")
        { RetryAfter = retry };
    }
}
