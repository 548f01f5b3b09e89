using Gateway.Core;
using Gateway.Core.Catalog;
using Gateway.Core.Failover;
using Gateway.Core.Providers;
using Gateway.Core.Telemetry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Core;

/// <summary>
/// The way back from a provider's bad day, on the real <see cref="FailoverExecutor"/> and <see cref="ProviderHealth"/> as the
/// gateway registers them, with time driven by <see cref="FakeTimeProvider"/>: breakers that open close again after a probe,
/// cool-downs end and are scoped to the model the provider limited, and a skip never blocks a request it cannot divert.
/// </summary>
public sealed class FailoverRecoveryTests : IDisposable
{
    private const int BreakSeconds = 30;

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
    private readonly IHost _host;
    private readonly FailoverExecutor _failover;
    private readonly ProviderHealth _health;

    public FailoverRecoveryTests()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { EnvironmentName = "Test" });
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:Gateway"] = "Host=127.0.0.1;Database=unused",
            ["Gateway:Failover:BreakerMinimumThroughput"] = "2",
            ["Gateway:Failover:BreakerFailureRatio"] = "0.5",
            ["Gateway:Failover:BreakerBreakSeconds"] = BreakSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Gateway:Failover:MaxRetryAfterSeconds"] = "60",
        });
        builder.Services.AddGatewayProxy();
        builder.Services.AddSingleton<TimeProvider>(_time);
        _host = builder.Build();
        _failover = _host.Services.GetRequiredService<FailoverExecutor>();
        _health = _host.Services.GetRequiredService<ProviderHealth>();
    }

    public void Dispose() => _host.Dispose();

    private static readonly ProviderInfo Alpha = Provider("alpha");
    private static readonly ProviderInfo Beta = Provider("beta");

    private static ProviderInfo Provider(string name) =>
        new(Guid.NewGuid(), name, "openai", new Uri("http://127.0.0.1:9/v1/"), "sk-test", null, ProviderSettings.Default);

    private static ModelRoute Route(ProviderInfo provider, string model) =>
        new(Guid.NewGuid(), $"{provider.Name}/{model}", provider, model, 1m, 1m, 1m, 1.25m, 2m, null, null, DateTimeOffset.UnixEpoch);

    /// <summary>A scripted upstream: each candidate answers what <see cref="Answers"/> says for it, and every call is counted.</summary>
    private sealed class Upstream
    {
        public Dictionary<string, Func<UpstreamFailure?>> Answers { get; } = [];
        public List<string> Calls { get; } = [];
        public Func<ModelRoute, CancellationToken, Task>? Before { get; set; }

        public async Task<UpstreamResult<string>> CallAsync(ModelRoute route, CancellationToken ct)
        {
            lock (Calls) Calls.Add(route.Alias);
            if (Before is { } before) await before(route, ct);
            return Answers.TryGetValue(route.Alias, out var answer) && answer() is { } failure ? failure : "answer from " + route.Alias;
        }

        public int CallsTo(ModelRoute route)
        {
            lock (Calls) return Calls.Count(c => c == route.Alias);
        }
    }

    private Task<FailoverResult<string>> RunAsync(Upstream upstream, params ModelRoute[] chain) =>
        _failover.RunAsync(GatewayTelemetry.Chat, chain, upstream.CallAsync, CancellationToken.None);

    private static UpstreamFailure ServerError(ProviderInfo provider) => new(UpstreamFailureKind.ServerError, provider.Name, "server error (500)", 500);

    private static UpstreamFailure RateLimited(ProviderInfo provider, int seconds) =>
        new(UpstreamFailureKind.RateLimited, provider.Name, "rate limited (429): slow down", 429) { RetryAfter = TimeSpan.FromSeconds(seconds) };

    private async Task OpenCircuitAsync(Upstream upstream, ModelRoute route)
    {
        upstream.Answers[route.Alias] = () => ServerError(route.Provider);
        for (var i = 0; i < 2; i++) await RunAsync(upstream, route);
        Assert.Equal("Open", _health.States()[route.Provider.Name]);
    }

    [Fact]
    public async Task OpenCircuit_AfterTheBreak_OneProbeReachesTheProvider_AndItsSuccessClosesTheCircuit()
    {
        var upstream = new Upstream();
        var primary = Route(Alpha, "m1");
        await OpenCircuitAsync(upstream, primary);

        var refused = await RunAsync(upstream, primary);
        Assert.Equal(2, upstream.CallsTo(primary)); // skipped while open: no call
        Assert.Equal("circuit_open", Assert.Single(refused.Attempts).Outcome);
        var error = refused.Failure!.ToGatewayError();
        Assert.Equal(503, error.Status);
        Assert.Equal(TimeSpan.FromSeconds(BreakSeconds), error.RetryAfter); // seconds until the probe is due

        _time.Advance(TimeSpan.FromSeconds(BreakSeconds / 2));
        Assert.Equal(TimeSpan.FromSeconds(BreakSeconds / 2), (await RunAsync(upstream, primary)).Failure!.ToGatewayError().RetryAfter);

        _time.Advance(TimeSpan.FromSeconds(BreakSeconds / 2 + 1));
        Assert.Equal("HalfOpen", _health.States()[Alpha.Name]); // health shows the probe is due, not a stale "Open"
        upstream.Answers.Remove(primary.Alias); // the provider is back
        var probe = await RunAsync(upstream, primary);

        Assert.Null(probe.Failure);
        Assert.Equal(3, upstream.CallsTo(primary));
        Assert.Equal("Closed", _health.States()[Alpha.Name]);
        Assert.Null((await RunAsync(upstream, primary)).Failure);
        Assert.Equal(4, upstream.CallsTo(primary));
    }

    [Fact]
    public async Task HalfOpenProbe_Fails_ReopensTheCircuitForAnotherBreak()
    {
        var upstream = new Upstream();
        var primary = Route(Alpha, "m1");
        await OpenCircuitAsync(upstream, primary);
        _time.Advance(TimeSpan.FromSeconds(BreakSeconds + 1));

        var probe = await RunAsync(upstream, primary);

        Assert.Equal(3, upstream.CallsTo(primary));
        Assert.Equal("server_error", Assert.Single(probe.Attempts).Outcome);
        Assert.Equal("Open", _health.States()[Alpha.Name]);
        await RunAsync(upstream, primary);
        Assert.Equal(3, upstream.CallsTo(primary)); // open again: skipped
        _time.Advance(TimeSpan.FromSeconds(BreakSeconds + 1));
        upstream.Answers.Remove(primary.Alias);
        Assert.Null((await RunAsync(upstream, primary)).Failure);
        Assert.Equal("Closed", _health.States()[Alpha.Name]);
    }

    [Fact]
    public async Task WhileAProbeIsUnderWay_OtherRequestsGoToTheNextCandidate()
    {
        var upstream = new Upstream();
        var (primary, fallback) = (Route(Alpha, "m1"), Route(Beta, "m1"));
        await OpenCircuitAsync(upstream, primary);
        _time.Advance(TimeSpan.FromSeconds(BreakSeconds + 1));
        upstream.Answers.Remove(primary.Alias);
        var probeStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var probeMayAnswer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        upstream.Before = async (route, ct) =>
        {
            if (route != primary) return;
            probeStarted.TrySetResult();
            await probeMayAnswer.Task.WaitAsync(ct);
        };

        var probe = RunAsync(upstream, primary, fallback);
        await probeStarted.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var during = await RunAsync(upstream, primary, fallback);
        probeMayAnswer.SetResult();
        var probed = await probe.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(fallback, during.Route);
        Assert.Equal(["circuit_open", "ok"], during.Attempts.Select(a => a.Outcome));
        Assert.Equal(primary, probed.Route);
        Assert.Equal(3, upstream.CallsTo(primary)); // two that opened it, one probe
        Assert.Equal("Closed", _health.States()[Alpha.Name]);
    }

    [Fact]
    public async Task RateLimit_CoolsDownOnlyThatModel_AndDivertsOnlyWhenAnotherCandidateIsReady()
    {
        var upstream = new Upstream();
        var (limited, sibling, other) = (Route(Alpha, "m1"), Route(Alpha, "m2"), Route(Beta, "m1"));
        upstream.Answers[limited.Alias] = () => RateLimited(Alpha, 2);

        var first = await RunAsync(upstream, limited);
        var error = first.Failure!.ToGatewayError();
        Assert.Equal((429, "rate_limit_exceeded", TimeSpan.FromSeconds(2)), (error.Status, error.Code, error.RetryAfter));

        // No other candidate: the provider is asked again (it decides), not refused on a stale guess.
        await RunAsync(upstream, limited);
        Assert.Equal(2, upstream.CallsTo(limited));
        // Another model of the same provider is not limited.
        Assert.Null((await RunAsync(upstream, sibling)).Failure);
        Assert.Equal(1, upstream.CallsTo(sibling));
        // With a ready fallback, the cooling model is skipped until its wait ends.
        var diverted = await RunAsync(upstream, limited, other);
        Assert.Equal(["cooling_down", "ok"], diverted.Attempts.Select(a => a.Outcome));
        Assert.Equal(2, upstream.CallsTo(limited));
        // A 429 in one request does not skip the provider's other models in that request.
        var chain = await RunAsync(new Upstream { Answers = { [limited.Alias] = () => RateLimited(Alpha, 2) } }, limited, sibling);
        Assert.Equal(sibling, chain.Route);

        _time.Advance(TimeSpan.FromSeconds(3));
        upstream.Answers.Remove(limited.Alias);
        var after = await RunAsync(upstream, limited, other);
        Assert.Equal(limited, after.Route);
        Assert.Equal(3, upstream.CallsTo(limited));
    }

    [Fact]
    public async Task AProvidersHugeWait_IsBoundedForTheCoolDownAndForTheClient()
    {
        var upstream = new Upstream();
        var limited = Route(Alpha, "m1");
        upstream.Answers[limited.Alias] = () => RateLimited(Alpha, 86_400);

        var result = await RunAsync(upstream, limited);

        Assert.Equal(TimeSpan.FromSeconds(60), result.Failure!.ToGatewayError().RetryAfter); // Gateway:Failover:MaxRetryAfterSeconds
        _time.Advance(TimeSpan.FromSeconds(61));
        Assert.Null(_health.Check(Alpha.Name, ProviderHealth.ModelKey(Alpha.Name, "m1")));
    }

    [Fact]
    public async Task MidStreamBreaks_CountInTheBreakers_ButAnInStreamRateLimitOnlyCoolsTheModelDown()
    {
        var modelKey = ProviderHealth.ModelKey(Alpha.Name, "m1");
        var upstream = new Upstream();
        var route = Route(Alpha, "m1");
        Assert.Null((await RunAsync(upstream, route)).Failure); // the breakers exist, closed

        for (var i = 0; i < 5; i++) await _health.ReportFailureAsync(RateLimited(Alpha, 3), modelKey);
        Assert.Equal(("Closed", "cooling_down"), (_health.States()[Alpha.Name], _health.Check(Alpha.Name, modelKey)?.Reason));

        _time.Advance(TimeSpan.FromSeconds(4));
        for (var i = 0; i < 2; i++)
            await _health.ReportFailureAsync(new UpstreamFailure(UpstreamFailureKind.Protocol, Alpha.Name, "the connection failed"), modelKey);
        Assert.Equal("Open", _health.States()[Alpha.Name]);
    }

    [Fact]
    public async Task ABilledBreakThatEndsTheChain_StillCountsInTheBreakers_AndNoFurtherCandidateIsCalled()
    {
        // A capped key's answer broke half-way and its reservation has no room for another call: the chain ends there, but the
        // provider still broke.
        var upstream = new Upstream();
        var (route, next) = (Route(Alpha, "m1"), Route(Beta, "m1"));
        upstream.Answers[route.Alias] = () => new UpstreamFailure(UpstreamFailureKind.Protocol, Alpha.Name, "the stream broke before it finished")
        {
            Usage = new TokenUsage(10, 5, 0),
        };
        var asked = 0;

        for (var i = 0; i < 2; i++)
        {
            var result = await _failover.RunAsync(GatewayTelemetry.Chat, [route, next], upstream.CallAsync, CancellationToken.None,
                (_, _) => Interlocked.Increment(ref asked) < 0);
            Assert.Equal((route, 1), (result.Route, result.Calls));
        }

        Assert.Equal(2, asked);
        Assert.Equal("Open", _health.States()[Alpha.Name]);
    }

    [Fact]
    public async Task EveryCandidateCoolingDown_CallsTheOneWhoseWaitEndsFirst()
    {
        var upstream = new Upstream();
        var (slow, soon) = (Route(Alpha, "m1"), Route(Beta, "m1"));
        upstream.Answers[slow.Alias] = () => RateLimited(Alpha, 40);
        upstream.Answers[soon.Alias] = () => RateLimited(Beta, 5);
        await RunAsync(upstream, slow);
        await RunAsync(upstream, soon);
        upstream.Answers.Clear();

        var result = await RunAsync(upstream, slow, soon);

        Assert.Equal(soon, result.Route);
        Assert.Equal(["cooling_down", "ok"], result.Attempts.Select(a => a.Outcome));
        Assert.Equal(1, upstream.CallsTo(slow));
    }

    [Fact]
    public async Task ProviderWideFailureWithAWait_CoolsDownTheWholeProvider()
    {
        var upstream = new Upstream();
        var (overloaded, sibling, other) = (Route(Alpha, "m1"), Route(Alpha, "m2"), Route(Beta, "m1"));
        upstream.Answers[overloaded.Alias] = () =>
            new UpstreamFailure(UpstreamFailureKind.Overloaded, Alpha.Name, "overloaded (529)", 529) { RetryAfter = TimeSpan.FromSeconds(10) };
        await RunAsync(upstream, overloaded);

        var result = await RunAsync(upstream, sibling, other);

        Assert.Equal(["cooling_down", "ok"], result.Attempts.Select(a => a.Outcome));
        Assert.Equal(0, upstream.CallsTo(sibling));
        Assert.Equal("CoolingDown", _health.States()[Alpha.Name]);
        _time.Advance(TimeSpan.FromSeconds(11));
        Assert.Equal(sibling, (await RunAsync(upstream, sibling, other)).Route);
    }
}
