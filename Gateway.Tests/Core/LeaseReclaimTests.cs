using System.Collections.Frozen;
using Dapper;
using Gateway.Core;
using Gateway.Core.Budgets;
using Gateway.Core.Keys;
using Gateway.Core.Metering;
using Gateway.Core.Persistence;
using Gateway.Core.Providers;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace Gateway.Tests.Core;

/// <summary>
/// Two instances' budget ledgers and lease heartbeats on a database of their own, stepped by hand on one
/// <see cref="FakeTimeProvider"/>: a dead instance's leases come back once its heartbeat stood still for the bound (and not a
/// moment before), less what it may still charge; a live one keeps them however much time passes.
/// </summary>
public sealed class LeaseReclaimTests(OwnDatabase database) : IClassFixture<OwnDatabase>
{
    // A database of its own (OwnDatabase): an instance here judges every instance it sees, and no other test's is here.
    private const decimal Cap = 1m; // leased in slices of 0.1
    private static readonly TimeSpan Beat = TimeSpan.FromSeconds(5);
    private const int ReclaimSeconds = 60;

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2031, 3, 10, 12, 0, 0, TimeSpan.Zero));
    private readonly GatewayKey _key = new(Guid.NewGuid(), "leased", "gw-lease", [], FrozenSet<string>.Empty, null, null, HardCapUsd: Cap);
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private sealed class Instance(BudgetLedger ledger, LeaseHeartbeat heartbeat) : IDisposable
    {
        public BudgetLedger Ledger => ledger;

        public Task BeatAsync() => heartbeat.BeatAsync(Ct);

        public void Dispose()
        {
            heartbeat.Dispose();
            ledger.Dispose();
        }
    }

    private Instance Start()
    {
        var calendar = new BudgetCalendar(Options.Create(new GatewayOptions()), _time);
        var ledger = new BudgetLedger(database.Source, _time, calendar);
        var journal = new UsageJournal(Options.Create(new MeteringOptions { Journal = false }),
            new HostingEnvironment { ContentRootPath = Path.GetTempPath() }, _time, NullLogger<UsageJournal>.Instance);
        var options = new BudgetOptions { LeaseHeartbeatSeconds = (int)Beat.TotalSeconds, LeaseReclaimSeconds = ReclaimSeconds };
        return new Instance(ledger, new LeaseHeartbeat(ledger, database.Source, journal, Options.Create(options), Options.Create(new UpstreamOptions()),
            _time, NullLogger<LeaseHeartbeat>.Instance));
    }

    private DateOnly Day => DateOnly.FromDateTime(_time.GetUtcNow().UtcDateTime);

    private async Task<Reservation?> ReserveAsync(Instance instance, decimal worstCase) =>
        (await instance.Ledger.ReserveAsync(_key, Day, worstCase, Ct)).Reservation;

    private async Task<List<(Guid Id, decimal Amount, decimal? Claimed, bool Closed, DateTime? ReclaimedAt)>> LeasesAsync()
    {
        await using var connection = await database.Source.OpenConnectionAsync(Ct);
        return (await connection.QueryAsync<(Guid, decimal, decimal?, bool, DateTime?)>(
            "SELECT id, amount, claimed, closed, reclaimed_at FROM budget_leases WHERE key_id = @key ORDER BY created_at, id", new { key = _key.Id })).AsList();
    }

    /// <summary>A holds one slice with three requests in flight (0.01 each), and its claim came down to them plus a quarter slice.</summary>
    private async Task<(Instance A, Instance B, Guid Lease, List<Reservation> InFlight)> AHoldsASliceAsync()
    {
        var a = Start();
        var b = Start();
        await a.BeatAsync();
        await b.BeatAsync();
        var inFlight = new List<Reservation>();
        for (var i = 0; i < 3; i++) inFlight.Add(Assert.IsType<Reservation>(await ReserveAsync(a, 0.01m)));
        for (var i = 0; i < 2; i++) // the first beat still leaves room for twice what was just reserved
        {
            _time.Advance(Beat);
            await a.BeatAsync();
            await b.BeatAsync();
        }
        var lease = Assert.Single(await LeasesAsync());
        Assert.Equal((0.1m, 0.055m, false), (lease.Amount, lease.Claimed, lease.Closed));
        return (a, b, lease.Id, inFlight);
    }

    [Fact]
    public async Task DeadInstance_TheUnclaimedRestOfItsLeasesComesBackOnceItsHeartbeatStoodStillForTheBound_NeverBefore()
    {
        var (a, b, lease, _) = await AHoldsASliceAsync();
        using var __ = a;
        using var ___ = b;

        // A dies: it never beats again, and its three requests never settle. B wants 0.92 and 0.9 is not leased.
        Assert.Null(await ReserveAsync(b, 0.92m));
        for (var silent = Beat; silent < TimeSpan.FromSeconds(ReclaimSeconds); silent += Beat)
        {
            _time.Advance(Beat);
            await b.BeatAsync();
            Assert.True(await ReserveAsync(b, 0.92m) is null, $"A's lease came back after {silent.TotalSeconds} s of silence, before the bound");
        }
        _time.Advance(Beat);
        await b.BeatAsync(); // A's counter has stood still for the bound

        Assert.NotNull(await ReserveAsync(b, 0.92m));
        // What A may still charge (its claim: the three requests plus headroom) stays reserved for its journal's rows.
        Assert.Null(await ReserveAsync(b, 0.03m));
        var leases = await LeasesAsync();
        var reclaimed = Assert.Single(leases, l => l.Id == lease);
        Assert.Equal((0.055m, true), (reclaimed.Amount, reclaimed.Closed));
        Assert.NotNull(reclaimed.ReclaimedAt);
        Assert.True(leases.Sum(l => l.Amount) <= Cap, $"leased {leases.Sum(l => l.Amount)} of a {Cap} cap");
    }

    [Fact]
    public async Task LiveInstance_HeartbeatingThroughThreeBounds_KeepsItsLeases()
    {
        var (a, b, lease, _) = await AHoldsASliceAsync();
        using var __ = a;
        using var ___ = b;

        // B beats five times for each of A's beats, so it sees A's counter stand still for most of its own beats.
        for (var elapsed = TimeSpan.Zero; elapsed < TimeSpan.FromSeconds(3 * ReclaimSeconds); elapsed += Beat)
        {
            for (var i = 0; i < 5; i++)
            {
                _time.Advance(Beat / 5);
                await b.BeatAsync();
            }
            await a.BeatAsync();
            Assert.Null(await ReserveAsync(b, 0.92m));
        }

        var kept = Assert.Single(await LeasesAsync());
        Assert.Equal((lease, 0.1m, false, (DateTime?)null), (kept.Id, kept.Amount, kept.Closed, kept.ReclaimedAt));
        Assert.Equal(lease, (await ReserveAsync(a, 0.01m))?.LeaseId); // A still serves from it
    }

    [Fact]
    public async Task InstanceTakenForDeadWhileAlive_CannotRaiseItsReclaimedClaim_AndGivesTheLeaseBackWhenItsRequestsSettle()
    {
        var (a, b, lease, inFlight) = await AHoldsASliceAsync();
        using var __ = a;
        using var ___ = b;
        // A is cut off from the database (no beats) but alive; B takes it for dead.
        for (var silent = TimeSpan.Zero; silent <= TimeSpan.FromSeconds(ReclaimSeconds); silent += Beat)
        {
            _time.Advance(Beat);
            await b.BeatAsync();
        }
        Assert.Equal(0.055m, Assert.Single(await LeasesAsync()).Amount);

        // 0.05 fits A's lease (0.07 unused) but not its claim (0.025 left): raising the claim would take back what B freed.
        var next = await ReserveAsync(a, 0.05m);

        Assert.NotNull(next);
        Assert.NotEqual(lease, next.LeaseId); // from a new slice, leased under the cap
        var leases = await LeasesAsync();
        Assert.Equal(0.055m, leases.Single(l => l.Id == lease).Amount);
        Assert.True(leases.Sum(l => l.Amount) <= Cap);

        // A's three old requests settle (0.01 each); its next beat closes the retired lease at what it charged.
        Assert.Equal(0.055m, leases.Single(l => l.Id == lease).Claimed); // the raise did not reach it
        foreach (var old in inFlight) old.Settle(0.01m);
        _time.Advance(Beat);
        await a.BeatAsync();
        Assert.Equal((0.03m, true), (await LeasesAsync()).Where(l => l.Id == lease).Select(l => (l.Amount, l.Closed)).Single());
    }

    [Fact]
    public async Task LoweredClaim_DoesNotRefuseARequestTheLeaseHolds_TheClaimIsRaisedInstead()
    {
        using var a = Start();
        await a.BeatAsync();
        var first = await ReserveAsync(a, 0.01m);
        for (var i = 0; i < 2; i++)
        {
            _time.Advance(Beat);
            await a.BeatAsync();
        }
        Assert.Equal(0.035m, Assert.Single(await LeasesAsync()).Claimed);

        var larger = await ReserveAsync(a, 0.06m); // past the claim (0.025 left), within the lease (0.09 left)

        Assert.Equal(first!.LeaseId, larger?.LeaseId);
        var lease = Assert.Single(await LeasesAsync()); // no second slice
        Assert.Equal((0.1m, 0.1m), (lease.Amount, lease.Claimed));
    }
}
