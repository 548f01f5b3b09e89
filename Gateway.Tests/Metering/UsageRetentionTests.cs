using Dapper;
using Gateway.Core.Metering;
using Gateway.Core.Persistence;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace Gateway.Tests.Metering;

/// <summary>
/// Usage retention on a database of its own (it drops partitions, which no other test's rows may be in): whole day partitions
/// past the limit go, newer ones and the daily aggregates stay, the default partition's expired rows go, and two instances
/// at once drop each partition once.
/// </summary>
public sealed class UsageRetentionTests(TestEnvironment env)
{
    // Noon UTC on 20 March 2026: with 7 days kept, partitions before 13 March go.
    private static readonly DateTimeOffset Now = new(2026, 3, 20, 12, 0, 0, TimeSpan.Zero);
    private static readonly Guid KeyA = Guid.NewGuid();
    private static readonly Guid KeyB = Guid.NewGuid();

    [Fact]
    public async Task Retention_PartitionsPastTheLimit_DroppedWhole_NewerKept_AggregatesKept()
    {
        await using var db = await NewDatabaseAsync();
        DateOnly[] old = [D(1), D(12)];
        DateOnly[] recent = [D(13), D(19), D(20)];
        foreach (var day in old.Concat(recent)) await SeedDayAsync(db, day, rows: 6);
        await AggregateAsync(db);
        var dailyBefore = await DailyAsync(db);
        var modelsBefore = await ModelsAsync(db);

        var pass = await Retention(db, days: 7).RunOnceAsync(CancellationToken.None);

        Assert.Equal(old, pass.Dropped);
        Assert.Empty(pass.Kept);
        Assert.False(pass.OtherInstanceBusy);
        Assert.Equal(recent, await PartitionDaysAsync(db));
        Assert.Equal(recent.Length * 6, await CountAsync(db, "SELECT count(*) FROM usage_events"));
        Assert.Equal(dailyBefore, await DailyAsync(db));
        Assert.Equal(modelsBefore, await ModelsAsync(db));
        Assert.Contains(old[0], (await DailyAsync(db)).Select(r => r.Day));

        // Idempotent: a second pass finds nothing to do.
        var again = await Retention(db, days: 7).RunOnceAsync(CancellationToken.None);
        Assert.Empty(again.Dropped);
        Assert.Equal(recent, await PartitionDaysAsync(db));
    }

    [Fact]
    public async Task Retention_Off_KeepsEveryPartition()
    {
        await using var db = await NewDatabaseAsync();
        await SeedDayAsync(db, new DateOnly(2020, 1, 1), rows: 2);
        await AggregateAsync(db);

        var pass = await Retention(db, days: 0).RunOnceAsync(CancellationToken.None);

        Assert.Empty(pass.Dropped);
        Assert.Equal([new DateOnly(2020, 1, 1)], await PartitionDaysAsync(db));
    }

    [Fact]
    public async Task Retention_DefaultPartition_ExpiredRowsDeleted_RecentRowsKept()
    {
        await using var db = await NewDatabaseAsync();
        // Days with no partition: their rows land in usage_events_default (as when a partition could not be created).
        await SeedDayAsync(db, D(2), rows: 3, partition: false);
        await SeedDayAsync(db, D(18), rows: 4, partition: false);
        await SeedDayAsync(db, D(19), rows: 2);
        await AggregateAsync(db);
        var dailyBefore = await DailyAsync(db);

        var pass = await Retention(db, days: 7).RunOnceAsync(CancellationToken.None);

        Assert.Equal(3, pass.DefaultRowsDeleted);
        Assert.Equal(4, await CountAsync(db, "SELECT count(*) FROM usage_events_default"));
        Assert.Equal(0, await CountAsync(db, "SELECT count(*) FROM usage_events_default WHERE occurred_at < '2026-03-13'"));
        Assert.Equal([D(19)], await PartitionDaysAsync(db));
        Assert.Equal(dailyBefore, await DailyAsync(db));
    }

    [Fact]
    public async Task Retention_RowsNotCountedInTheAggregates_PartitionKept()
    {
        await using var db = await NewDatabaseAsync();
        await SeedDayAsync(db, D(5), rows: 4);
        await SeedDayAsync(db, D(6), rows: 4);
        await AggregateAsync(db);
        // As if one key's rows of 5 March had never been counted (an aggregate edited by hand, or rows older than its table).
        await using (var c = await db.OpenConnectionAsync())
            await c.ExecuteAsync("DELETE FROM usage_daily_models WHERE day = @day AND key_id = @KeyA", new { day = D(5).ToDateTime(TimeOnly.MinValue), KeyA });

        var pass = await Retention(db, days: 7).RunOnceAsync(CancellationToken.None);

        Assert.Equal([D(6)], pass.Dropped);
        Assert.Equal([D(5)], pass.Kept);
        Assert.Equal([D(5)], await PartitionDaysAsync(db));
        Assert.Equal(4, await CountAsync(db, "SELECT count(*) FROM usage_events"));
    }

    [Fact]
    public async Task Retention_TwoInstancesAtOnce_EachPartitionDroppedOnce_NoError()
    {
        await using var db = await NewDatabaseAsync();
        var old = Enumerable.Range(0, 12).Select(i => new DateOnly(2026, 2, 1).AddDays(i)).ToArray();
        foreach (var day in old) await SeedDayAsync(db, day, rows: 20);
        await SeedDayAsync(db, D(19), rows: 3);
        await AggregateAsync(db);
        var dailyBefore = await DailyAsync(db);
        await using var other = NpgsqlDataSource.Create(db.ConnectionString);

        var passes = await Task.WhenAll(Retention(db, days: 7).RunOnceAsync(CancellationToken.None),
            Retention(other, days: 7).RunOnceAsync(CancellationToken.None));
        // One that found the other at work stopped its pass; its next pass (an hour later in production) finds the rest.
        var next = await Task.WhenAll(Retention(db, days: 7).RunOnceAsync(CancellationToken.None),
            Retention(other, days: 7).RunOnceAsync(CancellationToken.None));

        var dropped = passes.Concat(next).SelectMany(p => p.Dropped).ToList();
        Assert.Equal(old, dropped.Order());
        Assert.Equal([D(19)], await PartitionDaysAsync(db));
        Assert.Equal(dailyBefore, await DailyAsync(db));
    }

    [Fact]
    public async Task Retention_AsAHostedService_PassesAtStartAndEveryInterval_OnItsClock()
    {
        await using var db = await NewDatabaseAsync();
        await SeedDayAsync(db, D(12), rows: 2);
        await SeedDayAsync(db, D(13), rows: 2);
        await AggregateAsync(db);
        var clock = new FakeTimeProvider(Now);
        using var service = new UsageRetention(db, Options.Create(new UsageRetentionOptions { RetentionDays = 7, RetentionCheckMinutes = 60 }),
            clock, NullLogger<UsageRetention>.Instance);

        await service.StartAsync(CancellationToken.None);
        await Eventually.TrueAsync(async () => !(await PartitionDaysAsync(db)).Contains(D(12)), what: "The first pass");
        Assert.Equal([D(13)], await PartitionDaysAsync(db));

        // A day later 13 March is past the limit too; the hourly pass (the clock moved past its wait) drops it. The clock moves on
        // an hour at a time while waiting: the service may start its wait only after the first move, which would not reach it.
        clock.Advance(TimeSpan.FromDays(1));
        await Eventually.TrueAsync(async () =>
        {
            clock.Advance(TimeSpan.FromMinutes(60));
            return (await PartitionDaysAsync(db)).Length == 0;
        }, what: "The pass a day later");
        await service.StopAsync(CancellationToken.None);
        Assert.Equal(4, (await DailyAsync(db)).Count(r => r.Day == D(12) || r.Day == D(13))); // two keys a day, both days kept
    }

    [Fact]
    public async Task Retention_InTheGateway_DropsExpiredPartitions()
    {
        await using var db = await NewDatabaseAsync();
        await SeedDayAsync(db, new DateOnly(2020, 1, 1), rows: 2);
        await AggregateAsync(db);

        await using var host = new GatewayHost(db.ConnectionString, new() { ["Gateway:Usage:RetentionDays"] = "30" });

        await Eventually.TrueAsync(async () => (await PartitionDaysAsync(db)).Length == 0, what: "The gateway's retention pass");
        Assert.Equal(2, await CountAsync(db, "SELECT count(*) FROM usage_daily WHERE day = '2020-01-01'"));
    }

    private static DateOnly D(int dayOfMarch) => new(2026, 3, dayOfMarch);

    private static UsageRetention Retention(NpgsqlDataSource db, int days) =>
        new(db, Options.Create(new UsageRetentionOptions { RetentionDays = days }), new FakeTimeProvider(Now), NullLogger<UsageRetention>.Instance);

    private async Task<NpgsqlDataSource> NewDatabaseAsync()
    {
        var db = NpgsqlDataSource.Create(await env.Postgres.CreateDatabaseAsync());
        await new Migrator(db, NullLogger<Migrator>.Instance).MigrateAsync(CancellationToken.None);
        return db;
    }

    /// <summary><paramref name="rows"/> usage rows on <paramref name="day"/>, alternating two keys and two models.</summary>
    private static async Task SeedDayAsync(NpgsqlDataSource db, DateOnly day, int rows, bool partition = true)
    {
        await using var c = await db.OpenConnectionAsync();
        var at = day.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc);
        if (partition) await c.ExecuteAsync("SELECT ensure_usage_partition(@at::date)", new { at });
        await c.ExecuteAsync("""
            INSERT INTO usage_events (request_id, occurred_at, key_id, provider, served_model, asked_model, prompt_tokens, completion_tokens,
                                      cost_usd, latency_ms, status, streamed, day)
            SELECT gen_random_uuid(), @at + g * interval '1 minute', CASE WHEN g % 2 = 0 THEN @KeyA ELSE @KeyB END, 'mock',
                   CASE WHEN g % 3 = 0 THEN 'mock-1' ELSE 'mock-mini-1' END, 'mock', 10, 5, 0.0015, 12, 200, false, @at::date
            FROM generate_series(1, @rows) AS g
            """, new { at, KeyA, KeyB, rows });
    }

    /// <summary>The daily aggregates of every row, grouped as the usage writer groups them.</summary>
    private static async Task AggregateAsync(NpgsqlDataSource db)
    {
        await using var c = await db.OpenConnectionAsync();
        await c.ExecuteAsync("""
            TRUNCATE usage_daily, usage_daily_models;
            INSERT INTO usage_daily (key_id, day, requests, errors, prompt_tokens, completion_tokens, cached_tokens, cost_usd)
            SELECT key_id, day, count(*), 0, sum(prompt_tokens), sum(completion_tokens), 0, sum(cost_usd) FROM usage_events GROUP BY 1, 2;
            INSERT INTO usage_daily_models (day, key_id, provider, model, requests, errors, prompt_tokens, completion_tokens, cached_tokens, cost_usd)
            SELECT day, key_id, coalesce(provider, '(none)'), coalesce(served_model, asked_model, '(none)'), count(*), 0,
                   sum(prompt_tokens), sum(completion_tokens), 0, sum(cost_usd)
            FROM usage_events GROUP BY 1, 2, 3, 4;
            """);
    }

    private sealed record DailyRow(Guid KeyId, DateOnly Day, long Requests, decimal CostUsd);

    private static async Task<List<DailyRow>> DailyAsync(NpgsqlDataSource db)
    {
        await using var c = await db.OpenConnectionAsync();
        var rows = await c.QueryAsync<(Guid, DateTime, long, decimal)>("SELECT key_id, day, requests, cost_usd FROM usage_daily ORDER BY day, key_id");
        return [.. rows.Select(r => new DailyRow(r.Item1, DateOnly.FromDateTime(r.Item2), r.Item3, r.Item4))];
    }

    private static async Task<List<string>> ModelsAsync(NpgsqlDataSource db)
    {
        await using var c = await db.OpenConnectionAsync();
        return [.. await c.QueryAsync<string>(
            "SELECT concat_ws('|', day, key_id, provider, model, requests, cost_usd) FROM usage_daily_models ORDER BY day, key_id, provider, model")];
    }

    private static async Task<DateOnly[]> PartitionDaysAsync(NpgsqlDataSource db)
    {
        await using var c = await db.OpenConnectionAsync();
        var names = await c.QueryAsync<string>("""
            SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'usage_events'::regclass AND c.relname <> 'usage_events_default' ORDER BY 1
            """);
        return [.. names.Select(n => DateOnly.ParseExact(n["usage_events_".Length..], "yyyyMMdd", System.Globalization.CultureInfo.InvariantCulture))];
    }

    private static async Task<long> CountAsync(NpgsqlDataSource db, string sql)
    {
        await using var c = await db.OpenConnectionAsync();
        return await c.ExecuteScalarAsync<long>(sql);
    }
}
