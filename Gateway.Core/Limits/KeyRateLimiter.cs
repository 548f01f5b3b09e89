using System.Collections.Concurrent;
using System.Globalization;
using Gateway.Core.Errors;
using Gateway.Core.Keys;
using Gateway.Core.Redis;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace Gateway.Core.Limits;

/// <summary>What a request may be told of its key's limits (OpenAI's x-ratelimit-* headers).</summary>
public sealed record RateLimitState(int? RequestLimit, int? RequestsRemaining, int? TokenLimit, int? TokensRemaining);

/// <summary>
/// Per-key requests-per-minute and tokens-per-minute limits, on token buckets that hold a minute's worth and refill continuously at
/// the limit's rate, so Retry-After says exactly when the next request fits. A request's token cost is its estimated prompt plus its
/// output limit, as OpenAI counts it (a request without an output limit counts its prompt only), taken when the request starts.
/// A request takes from both buckets or from neither (a refused request costs nothing).
/// <list type="bullet">
/// <item>With Redis (<see cref="RedisLink"/> up): one bucket pair per key in Redis, checked and taken by one script in one round
/// trip, so a key's limits are exact across every instance.</item>
/// <item>Without Redis, or while it is unreachable: buckets in this process holding the limit divided by the live instances
/// (<see cref="LiveInstances"/>), so the instances together stay near the limit. A Redis failure never fails the request: it is
/// decided locally.</item>
/// </list>
/// Time is read from the <see cref="TimeProvider"/> registered under <see cref="ClockKey"/> (the host's clock by default); with
/// Redis, instances' clocks are assumed to agree (NTP): the script never moves a bucket's time backwards.
/// </summary>
public sealed class KeyRateLimiter(RedisLink redis, LiveInstances instances, [FromKeyedServices(KeyRateLimiter.ClockKey)] TimeProvider time)
{
    /// <summary>The service key of the clock the limits read (tests drive it by hand).</summary>
    public const string ClockKey = "rate-limits";

    private const double MinuteMs = 60_000;

    private readonly ConcurrentDictionary<Guid, LocalBuckets> _local = new();

    // KEYS[1]: the key's hash (fields r*/t*: capacity, tokens, time of the requests and tokens buckets).
    // ARGV: now (ms), requests per minute (0: none), tokens per minute (0: none), the request's token cost.
    // Returns {refused (0 none, 1 requests, 2 tokens), requests left (-1: no limit), tokens left (-1), retry after (ms)}.
    // Same arithmetic as LocalBuckets.Take below; nothing is written for a refused request.
    private const string Script = """
        local now = tonumber(ARGV[1])
        local caps = { tonumber(ARGV[2]), tonumber(ARGV[3]) }
        local want = { 1, tonumber(ARGV[4]) }
        local names = { 'r', 't' }
        local left = { -1, -1 }
        local stamps = { now, now }
        for i = 1, 2 do
          local cap = caps[i]
          if cap > 0 then
            local s = redis.call('HMGET', KEYS[1], names[i] .. 'c', names[i] .. 'n', names[i] .. 's')
            local old, n, ts = tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
            if old == nil or n == nil or ts == nil then
              n, ts = cap, now
            elseif old ~= cap then
              n = math.max(0, math.min(cap, n + cap - old))
            end
            if now > ts then
              n = math.min(cap, n + (now - ts) * cap / 60000)
              ts = now
            end
            if n < want[i] then
              local retry = math.ceil((want[i] - n) * 60000 / cap)
              if i == 1 then return { 1, 0, -1, retry } end
              return { 2, math.floor(left[1]), 0, retry }
            end
            left[i], stamps[i] = n, ts
          end
        end
        for i = 1, 2 do
          if caps[i] > 0 then
            left[i] = left[i] - want[i]
            redis.call('HSET', KEYS[1], names[i] .. 'c', caps[i], names[i] .. 'n', tostring(left[i]), names[i] .. 's', stamps[i])
          end
        end
        redis.call('PEXPIRE', KEYS[1], 120000)
        return { 0, math.floor(left[1]), math.floor(left[2]), 0 }
        """;

    /// <summary>Takes one request and <paramref name="tokens"/> tokens from the key's limits, or says why not.</summary>
    public async ValueTask<(RateLimitState State, GatewayError? Refused)> TryAcquireAsync(GatewayKey key, Func<int> tokens)
    {
        if (key.RpmLimit is null && key.TpmLimit is null) return (new RateLimitState(null, null, null, null), null);
        var cost = 0;
        if (key.TpmLimit is { } tpm)
        {
            cost = Math.Max(tokens(), 1);
            if (cost > tpm)
            {
                return (new RateLimitState(key.RpmLimit, null, tpm, null), new GatewayError(429,
                    $"This request needs about {cost} tokens, more than this key's limit of {tpm} tokens per minute.",
                    "tokens", null, "rate_limit_exceeded"));
            }
        }
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var taken = redis.IsUp ? await TakeSharedAsync(key, cost, now) : null;
        taken ??= TakeLocal(key, cost, now);
        var (refused, requestsLeft, tokensLeft, retryMs) = taken.Value;
        var state = new RateLimitState(key.RpmLimit, requestsLeft, key.TpmLimit, tokensLeft);
        return refused switch
        {
            1 => (state, Refused("requests", key.RpmLimit!.Value, retryMs)),
            2 => (state, Refused("tokens", key.TpmLimit!.Value, retryMs)),
            _ => (state, null),
        };
    }

    private async ValueTask<(int, int?, int?, long)?> TakeSharedAsync(GatewayKey key, int cost, long now)
    {
        try
        {
            var result = (RedisResult[])(await redis.Database.ScriptEvaluateAsync(Script, [(RedisKey)$"gw:rl:{{{key.Id:N}}}"],
                [now, key.RpmLimit ?? 0, key.TpmLimit ?? 0, cost]))!;
            return ((int)result[0], Left((long)result[1]), Left((long)result[2]), (long)result[3]);
        }
        catch (Exception ex) when (RedisLink.IsOutage(ex))
        {
            redis.Failed(ex);
            return null;
        }

        static int? Left(long left) => left < 0 ? null : (int)left;
    }

    private (int, int?, int?, long) TakeLocal(GatewayKey key, int cost, long now)
    {
        // A share of each limit per live instance (at least 1); a share that changes resizes the bucket, as an admin's change does.
        var share = instances.Count;
        var rpm = key.RpmLimit is { } r ? Math.Max(1, r / share) : 0;
        var tpm = key.TpmLimit is { } t ? Math.Max(1, t / share) : 0;
        // A request over this instance's share of the tokens, yet within the key's limit, is let through on an empty bucket rather
        // than refused forever.
        var buckets = _local.GetOrAdd(key.Id, static _ => new LocalBuckets());
        return buckets.Take(rpm, tpm, tpm > 0 ? Math.Min(cost, tpm) : 0, now);
    }

    private static GatewayError Refused(string kind, int limit, long retryMs)
    {
        var retry = TimeSpan.FromMilliseconds(Math.Max(retryMs, 1));
        return new GatewayError(429,
            $"Rate limit reached: this key may use {limit} {kind} per minute. Try again in {Math.Ceiling(retry.TotalSeconds).ToString(CultureInfo.InvariantCulture)} s.",
            kind, null, "rate_limit_exceeded")
        { RetryAfter = retry };
    }

    /// <summary>One key's requests and tokens buckets in this process; the arithmetic of <see cref="Script"/>.</summary>
    private sealed class LocalBuckets
    {
        private readonly Lock _lock = new();
        private readonly double[] _capacity = new double[2];
        private readonly double[] _tokens = new double[2];
        private readonly long[] _stamp = new long[2];

        public (int, int?, int?, long) Take(int rpm, int tpm, int cost, long now)
        {
            ReadOnlySpan<int> caps = [rpm, tpm];
            ReadOnlySpan<int> want = [1, cost];
            Span<double> left = [-1, -1];
            lock (_lock)
            {
                for (var i = 0; i < 2; i++)
                {
                    if (caps[i] <= 0) continue;
                    double cap = caps[i], n = _tokens[i];
                    var ts = _stamp[i];
                    if (_capacity[i] == 0) (n, ts) = (cap, now);
                    else if (_capacity[i] != cap) n = Math.Max(0, Math.Min(cap, n + cap - _capacity[i]));
                    if (now > ts) (n, ts) = (Math.Min(cap, n + (now - ts) * cap / MinuteMs), now);
                    (_capacity[i], _tokens[i], _stamp[i]) = (cap, n, ts); // the refill is kept even when refused (no rounding: exact)
                    if (n < want[i])
                    {
                        var retry = (long)Math.Ceiling((want[i] - n) * MinuteMs / cap);
                        return i == 0 ? (1, 0, null, retry) : (2, left[0] < 0 ? null : (int)left[0], 0, retry);
                    }
                    left[i] = n;
                }
                for (var i = 0; i < 2; i++)
                {
                    if (caps[i] <= 0) continue;
                    _tokens[i] -= want[i];
                    left[i] = _tokens[i];
                }
            }
            return (0, left[0] < 0 ? null : (int)left[0], left[1] < 0 ? null : (int)left[1], 0);
        }
    }
}
