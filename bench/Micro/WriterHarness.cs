using System.Diagnostics;
using Gateway.Core.Budgets;
using Gateway.Core.Metering;
using Gateway.Core.Persistence;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Micro;

/// <summary>
/// The metering writer alone: <see cref="UsageWorkload"/> records published to the real <see cref="UsageChannel"/> as fast as
/// the real <see cref="UsageWriter"/> takes them, into the <c>ConnectionStrings__Gateway</c> database (migrated first), with
/// the usage journal as configured (on by default, as in production). Prints the rows stored per second, from the first
/// record published to the last batch committed (after a warm-up that is not timed), and checks that <c>usage_events</c>
/// gained exactly one row per record.
/// </summary>
internal static class WriterHarness
{
    private static readonly TimeSpan ReportEvery = TimeSpan.FromSeconds(5);

    private const int WarmUpRows = 25_000;

    public static async Task<int> RunAsync(long rows, long? grow)
    {
        var journalDirectory = MicroHost.ScratchDirectory("journal");
        var keysDirectory = MicroHost.ScratchDirectory("keys");
        try
        {
            using var host = MicroHost.Build(new Dictionary<string, string?>
            {
                // A journal of its own: files an earlier run left would be replayed into the count.
                ["Gateway:Metering:JournalDirectory"] = journalDirectory,
                ["Gateway:DataProtectionKeysDirectory"] = keysDirectory,
            });
            return await MeasureAsync(host.Services, rows, grow, journalDirectory);
        }
        finally
        {
            Directory.Delete(journalDirectory, recursive: true);
            Directory.Delete(keysDirectory, recursive: true);
        }
    }

    private static async Task<int> MeasureAsync(IServiceProvider services, long rows, long? grow, string journalDirectory)
    {
        var ct = CancellationToken.None;
        var db = services.GetRequiredService<NpgsqlDataSource>();
        await services.GetRequiredService<Migrator>().MigrateAsync(ct);
        if (grow is { } target) await UsageFiller.GrowAsync(db, target, days: 30, ct);
        var before = await CountAsync(db, ct);
        var options = services.GetRequiredService<IOptions<MeteringOptions>>().Value;
        Console.WriteLine($"usage_events before the run: {before:N0} rows");
        Console.WriteLine($"journal {(options.Journal ? $"on ({journalDirectory})" : "off")}, batch size {options.BatchSize:N0}, " +
                          $"queue capacity {options.ChannelCapacity:N0}");

        var workload = new UsageWorkload(services.GetRequiredService<TimeProvider>(), services.GetRequiredService<BudgetCalendar>());
        await workload.LeaseAsync(db, ct);
        using var flushes = new FlushListener();
        var channel = services.GetRequiredService<UsageChannel>();
        var journal = services.GetRequiredService<UsageJournal>();
        var writer = services.GetRequiredService<UsageWriter>();
        // In the host's order: the journal starts before the writer and stops after it.
        await journal.StartAsync(ct);
        await writer.StartAsync(ct);

        // Not timed: the first batches pay for JIT compilation and the day's partition, which a gateway in service has behind it.
        await WriteAsync(channel, workload, flushes, WarmUpRows, options, ct);
        flushes.ResetBatches();
        var started = Stopwatch.GetTimestamp();
        using var stopReporting = new CancellationTokenSource();
        var reporting = ReportAsync(flushes, started, stopReporting.Token);
        await WriteAsync(channel, workload, flushes, rows, options, ct);
        var seconds = Stopwatch.GetElapsedTime(started, flushes.LastFlushAt).TotalSeconds;
        await stopReporting.CancelAsync();
        await reporting;
        await writer.StopAsync(ct);
        await journal.StopAsync(ct);

        var stored = await CountAsync(db, ct) - before;
        Console.WriteLine($"writer: {rows:N0} rows in {seconds:F1} s = {rows / seconds:N0} rows/s sustained, at {before:N0} rows before; " +
                          $"{flushes.Batches:N0} batches, {flushes.MeanBatchSeconds * 1000:F0} ms mean, {flushes.MaxBatchSeconds * 1000:F0} ms max");
        if (stored == WarmUpRows + rows) return 0;
        Console.WriteLine($"MISMATCH: usage_events gained {stored:N0} rows for {WarmUpRows + rows:N0} records published");
        return 1;
    }

    /// <summary>Publishes <paramref name="count"/> records as fast as the writer takes them, and waits until they are committed.</summary>
    private static async Task WriteAsync(UsageChannel channel, UsageWorkload workload, FlushListener flushes, long count,
        MeteringOptions options, CancellationToken ct)
    {
        var target = flushes.Rows + count;
        // A few batches ahead of the writer: it always finds a full batch waiting, and the queue never fills (records would
        // then live only in the journal until replayed: the outage path, not what is measured here). A burst of a hundred
        // thousand records would also measure the journal's fsync of them rather than the writer.
        var ahead = Math.Min(options.ChannelCapacity / 2, 4 * options.BatchSize);
        for (var published = target - count; published < target; published++)
        {
            while (published - flushes.Rows >= ahead) await Task.Delay(1, ct);
            await channel.PublishAsync(workload.Next());
        }
        while (flushes.Rows < target) await Task.Delay(10, ct);
    }

    private static async Task ReportAsync(FlushListener flushes, long started, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(ReportEvery);
        var first = flushes.Rows;
        var last = first;
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                var now = flushes.Rows;
                Console.WriteLine($"  {Stopwatch.GetElapsedTime(started).TotalSeconds,5:F0} s: {now - first,12:N0} rows stored, " +
                                  $"{(now - last) / ReportEvery.TotalSeconds,8:N0} rows/s in the last {ReportEvery.TotalSeconds:F0} s");
                last = now;
            }
        }
        catch (OperationCanceledException)
        {
            // The run is over.
        }
    }

    /// <summary>Only grows <c>usage_events</c> (bench/run.sh's growth step): to <paramref name="rows"/>, over <paramref name="days"/> days.</summary>
    public static async Task<int> GrowAsync(long rows, int days)
    {
        var keysDirectory = MicroHost.ScratchDirectory("keys");
        try
        {
            using var host = MicroHost.Build(new Dictionary<string, string?> { ["Gateway:DataProtectionKeysDirectory"] = keysDirectory });
            await host.Services.GetRequiredService<Migrator>().MigrateAsync(CancellationToken.None);
            await UsageFiller.GrowAsync(host.Services.GetRequiredService<NpgsqlDataSource>(), rows, days, CancellationToken.None);
            return 0;
        }
        finally
        {
            Directory.Delete(keysDirectory, recursive: true);
        }
    }

    private static async Task<long> CountAsync(NpgsqlDataSource db, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await UsageFiller.CountAsync(connection, ct);
    }
}
