using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Gateway.Core.Redis;

/// <summary>
/// The optional Redis every instance shares (<c>ConnectionStrings:Redis</c>, or <c>Gateway:Redis</c>): exact rate limits across
/// instances and, if chosen, the response cache. Redis is never needed to answer a request: while it is unreachable, callers use
/// their local fallback (<see cref="IsUp"/> is false), and a probe every second notices when it is back. Each change of state is
/// logged once, never per request. Commands time out after 250 ms unless the connection string says otherwise.
/// </summary>
public sealed partial class RedisLink(IConfiguration configuration, TimeProvider time, ILogger<RedisLink> logger) : IHostedService, IAsyncDisposable
{
    // First, so a setting in the connection string wins (later options override earlier ones). abortConnect=false: a Redis down
    // at start is a degraded start, not a failed one; the multiplexer keeps reconnecting in the background.
    private const string Defaults = "abortConnect=false,connectTimeout=1000,asyncTimeout=250,syncTimeout=250,connectRetry=1";
    private static readonly TimeSpan ProbeEvery = TimeSpan.FromSeconds(1);

    private readonly string? _configuration = configuration.GetConnectionString("Redis") is { Length: > 0 } named
        ? named
        : configuration["Gateway:Redis"] is { Length: > 0 } alias ? alias : null;
    private readonly CancellationTokenSource _stop = new();
    private ConnectionMultiplexer? _redis;
    private Task _probe = Task.CompletedTask;
    private volatile bool _up;
    private bool _disposed;
    private int _downLogged; // 1 once the current outage was logged

    /// <summary>Whether a Redis connection string is set.</summary>
    public bool Configured => _configuration is not null;

    /// <summary>Redis answered the last command or probe: use it. False while unreachable (and when not configured).</summary>
    public bool IsUp => _up;

    /// <summary>The database to use while <see cref="IsUp"/>.</summary>
    public IDatabase Database => _redis?.GetDatabase() ?? throw new InvalidOperationException("Redis is not configured.");

    /// <summary><c>off</c> (no Redis configured), <c>shared</c> (Redis answers) or <c>degraded</c> (configured, unreachable).</summary>
    public string Mode => !Configured ? "off" : _up ? "shared" : "degraded";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_configuration is null) return;
        var options = ConfigurationOptions.Parse(Defaults + "," + _configuration);
        _redis = await ConnectionMultiplexer.ConnectAsync(options);
        _redis.ConnectionFailed += (_, e) => Down(e.Exception?.GetType().Name ?? e.FailureType.ToString());
        await ProbeAsync();
        _probe = Task.Run(() => RunAsync(_stop.Token), CancellationToken.None);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_disposed) return; // a test host may dispose its services before it stops
        await _stop.CancelAsync();
        await _probe.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    /// <summary>A command failed: use the local fallback until the probe reaches Redis again. Logged once per outage.</summary>
    public void Failed(Exception error) => Down(error.GetType().Name);

    /// <summary>Whether <paramref name="error"/> says Redis is unreachable or slow (the fallback applies), not a bug.</summary>
    public static bool IsOutage(Exception error) => error is RedisException or TimeoutException or ObjectDisposedException;

    private async Task RunAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(ProbeEvery, time, ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            await ProbeAsync();
        }
    }

    private async Task ProbeAsync()
    {
        try
        {
            await _redis!.GetDatabase().PingAsync();
            if (_up) return;
            _up = true;
            Interlocked.Exchange(ref _downLogged, 0);
            Log.Up(logger);
        }
        catch (Exception ex) when (IsOutage(ex))
        {
            Down(ex.GetType().Name);
        }
    }

    private void Down(string why)
    {
        _up = false;
        if (Interlocked.Exchange(ref _downLogged, 1) == 0) Log.Down(logger, why);
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        await _stop.CancelAsync();
        await _probe.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
        if (_redis is not null) await _redis.DisposeAsync();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2101, Level = LogLevel.Warning,
            Message = "Redis is unreachable ({Error}): rate limits are local to this instance (a share per live instance) and the Redis response cache misses, until it answers again")]
        public static partial void Down(ILogger logger, string error);

        [LoggerMessage(EventId = 2102, Level = LogLevel.Information, Message = "Redis answers: rate limits are shared by every instance")]
        public static partial void Up(ILogger logger);
    }
}
