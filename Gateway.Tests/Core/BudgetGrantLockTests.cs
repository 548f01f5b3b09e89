using System.Collections.Frozen;
using System.Globalization;
using Dapper;
using Gateway.Core;
using Gateway.Core.Budgets;
using Gateway.Core.Keys;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace Gateway.Tests.Core;

/// <summary>
/// During a rolling upgrade, instances of the previous release grant budget leases beside this one's: a key-day's grants stay
/// serialized only while both releases take the same advisory lock. The previous release sent the day as a timestamp and
/// hashed <c>@key::text || @day::text</c>, i.e. <c>'&lt;key id&gt;2031-03-11 00:00:00'</c>; this one sends a date.
/// </summary>
public sealed class BudgetGrantLockTests(OwnDatabase database) : IClassFixture<OwnDatabase>
{
    // A database of its own (OwnDatabase): the lock and the leases here are this class's alone.
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Grant_WhileThePreviousReleasesLockForTheKeyDayIsHeld_WaitsForIt_ThenLeases()
    {
        // The budget day is the calendar's (Gateway:BudgetTimeZone), as the request meter stamps it: in Auckland it is already
        // the 11th at 12:00 UTC on the 10th, so a lock text built from the UTC date would not match.
        var time = new FakeTimeProvider(new DateTimeOffset(2031, 3, 10, 12, 0, 0, TimeSpan.Zero));
        var calendar = new BudgetCalendar(Options.Create(new GatewayOptions { BudgetTimeZone = "Pacific/Auckland" }), time);
        var day = calendar.Today;
        Assert.Equal(new DateOnly(2031, 3, 11), day);
        var key = new GatewayKey(Guid.NewGuid(), "upgrade", "gw-upgrade", [], FrozenSet<string>.Empty, null, null, HardCapUsd: 1m);
        using var ledger = new BudgetLedger(database.Source, time, calendar);
        // The previous release's lock text, written out: the key's uuid text, then the day as timestamp text.
        var previousText = $"'{key.Id}' || '{day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)} 00:00:00'";

        await using var holder = await database.Source.OpenConnectionAsync(Ct);
        await using var held = await holder.BeginTransactionAsync(Ct);
        await holder.ExecuteAsync($"SELECT pg_advisory_xact_lock(hashtextextended({previousText}, 0))", transaction: held);
        var lockKey = await holder.ExecuteScalarAsync<long>($"SELECT hashtextextended({previousText}, 0)", transaction: held);

        var grant = ledger.ReserveAsync(key, day, 0.01m, Ct);
        try
        {
            // GrantAsync gives up on the lock after its own 5 s: everything from here to the rollback is a few queries.
            await Eventually.TrueAsync(async () => grant.IsCompleted || await WaitsForAdvisoryLockAsync(lockKey),
                what: "The grant waiting on the previous release's advisory lock (or completing)");
            Assert.False(grant.IsCompleted, "The grant completed while the previous release's lock for its key and day was held");
            Assert.Equal(0L, await LeaseCountAsync(key.Id));
        }
        finally
        {
            await held.RollbackAsync(Ct);
        }

        var check = await grant.WaitAsync(Eventually.Bound, Ct);
        Assert.NotNull(check.Reservation);
        Assert.Equal(1L, await LeaseCountAsync(key.Id));
    }

    // Another session of this database waits for the advisory lock with this 64-bit key (pg_locks splits it into classid, objid).
    private async Task<bool> WaitsForAdvisoryLockAsync(long lockKey)
    {
        await using var connection = await database.Source.OpenConnectionAsync(Ct);
        return await connection.ExecuteScalarAsync<bool>("""
            SELECT EXISTS (SELECT 1 FROM pg_locks
                           WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1
                             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                             AND ((classid::bigint << 32) | objid::bigint) = @lockKey)
            """, new { lockKey });
    }

    private async Task<long> LeaseCountAsync(Guid key)
    {
        await using var connection = await database.Source.OpenConnectionAsync(Ct);
        return await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM budget_leases WHERE key_id = @key", new { key });
    }
}
