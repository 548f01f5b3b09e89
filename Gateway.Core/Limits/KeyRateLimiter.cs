using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.RateLimiting;
using Gateway.Core.Errors;
using Gateway.Core.Keys;

namespace Gateway.Core.Limits;

/// <summary>What a request may be told of its key's limits (OpenAI's x-ratelimit-* headers).</summary>
public sealed record RateLimitState(int? RequestLimit, int? RequestsRemaining, int? TokenLimit, int? TokensRemaining);

/// <summary>
/// Per-key requests-per-minute and tokens-per-minute limits (System.Threading.RateLimiting token
/// buckets: a full minute's worth, refilled every second, so Retry-After is exact). Limits are per
/// gateway instance: with N instances a key can reach N times its limits (budgets, unlike these, hold
/// across instances). A request's token cost is its estimated prompt plus its output limit, as OpenAI
/// counts it (a request without an output limit counts its prompt only).
/// </summary>
public sealed class KeyRateLimiter
{
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

    // A limit changed by an admin takes effect with a fresh bucket.
    private RateLimiter For(Guid key, string kind, int limit)
    {
        while (true)
        {
            if (_limiters.TryGetValue((key, kind), out var existing))
            {
                if (existing.Limit == limit) return existing.Limiter;
                if (!_limiters.TryUpdate((key, kind), (limit, Create(limit)), existing)) continue;
                existing.Limiter.Dispose();
                return _limiters[(key, kind)].Limiter;
            }
            var created = Create(limit);
            if (_limiters.TryAdd((key, kind), (limit, created))) return created;
            created.Dispose();
        }
    }

    // Refilled at the limit's rate: one token every 60/limit seconds, or limit/60 tokens a second.
    private static TokenBucketRateLimiter Create(int limit) => new(new TokenBucketRateLimiterOptions
    {
        TokenLimit = limit,
        TokensPerPeriod = limit <= 60 ? 1 : (int)Math.Ceiling(limit / 60.0),
        ReplenishmentPeriod = limit <= 60 ? TimeSpan.FromSeconds(60.0 / limit) : TimeSpan.FromSeconds(1),
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
