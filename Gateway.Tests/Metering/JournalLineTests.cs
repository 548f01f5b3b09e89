using Gateway.Core.Metering;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Metering;

/// <summary>
/// Journal lines are serialised into pooled buffers that go back to the pool once written: a buffer reused too early, or a line
/// written from another's buffer, would put one request's record in another's line. On Linux the lines are copied into a
/// mapped file through a window that moves, and a full file makes way for the next: a window placed wrong, a file not cut to
/// its lines at close, or a tail of reserved space read as a line would lose or corrupt records. Many appenders at once,
/// records of very different sizes (one far past the size a thread keeps its buffer at, some past a whole small file), and every
/// line read back must be the record appended.
/// </summary>
public sealed class JournalLineTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "gw-journal-lines-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 5, 12, 0, 0, TimeSpan.Zero));

    private UsageJournal Journal(long mappedBytes = 0, long windowBytes = 0, Microsoft.Extensions.Logging.ILogger<UsageJournal>? logger = null)
    {
        var options = Options.Create(new MeteringOptions { JournalDirectory = _dir });
        var environment = new HostingEnvironment { ContentRootPath = Path.GetTempPath() };
        logger ??= NullLogger<UsageJournal>.Instance;
        return mappedBytes == 0
            ? new UsageJournal(options, environment, _time, logger)
            : new UsageJournal(options, environment, _time, logger) { MappedBytes = mappedBytes, WindowBytes = windowBytes };
    }

    [Theory]
    [InlineData(0, 0)] // the shipped sizes: one 16 MB file, one window
    [InlineData(256 * 1024, 16 * 1024)] // small files and windows: many of each, and records larger than a file
    public async Task Lines_AppendedConcurrently_EachReadBackAsTheRecordAppended(long mappedBytes, long windowBytes)
    {
        var journal = Journal(mappedBytes, windowBytes);
        await journal.StartAsync(TestContext.Current.CancellationToken);

        var appended = new System.Collections.Concurrent.ConcurrentDictionary<Guid, UsageRecord>();
        await Parallel.ForEachAsync(Enumerable.Range(0, 4_000), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
        {
            var record = new UsageRecord
            {
                RequestId = Guid.NewGuid(), OccurredAt = _time.GetUtcNow(), KeyId = Guid.NewGuid(), Day = new DateOnly(2026, 12, 5),
                // Sizes from a few bytes to 300 KB, so lines change buffers, one thread's outsized buffer is let go, and a
                // line can be larger than a whole small file.
                EndUser = new string((char)('a' + i % 26), i % 97 == 0 ? 100_000 : i % 1000 == 1 ? 300_000 : i % 300),
                AskedModel = i % 2 == 0 ? "gpt-4o-mini" : null, // nulls are left out of the line, and read back as null
                PromptTokens = i, CompletionTokens = i * 2, CostUsd = i / 1000m, InFlight = i % 3 == 0,
            };
            appended[record.RequestId] = record;
            await journal.AppendAsync(record);
        });
        var files = Directory.GetFiles(_dir, "usage-*.jsonl");
        if (mappedBytes > 0 && OperatingSystem.IsLinux())
        {
            Assert.True(files.Length > 10, $"{files.Length} files: the small files did not fill up");
            // The fsync loop closes full files: each is cut to its lines (no reserved zeros left in it).
            await TicksUntilAsync(() => Directory.GetFiles(_dir, "usage-*.jsonl").Count(f => !EndsInZeros(f)) >= files.Length - 1,
                "the full files were closed and cut");
        }
        await journal.StopAsync(TestContext.Current.CancellationToken);

        files = Directory.GetFiles(_dir, "usage-*.jsonl");
        Assert.All(files, file => Assert.DoesNotContain((byte)0, File.ReadAllBytes(file)));
        var read = files.SelectMany(File.ReadLines)
            .Select(line => System.Text.Json.JsonSerializer.Deserialize(line, UsageJournalJson.Default.UsageRecord)!).ToList();
        Assert.Equal(appended.Count, read.Count);
        Assert.Equal(appended.Count, read.Select(r => r.RequestId).Distinct().Count());
        foreach (var record in read)
        {
            var expected = appended[record.RequestId];
            Assert.Equal(expected.EndUser, record.EndUser);
            Assert.Equal(expected.AskedModel, record.AskedModel);
            Assert.Equal((expected.PromptTokens, expected.CompletionTokens, expected.CostUsd, expected.InFlight, expected.KeyId),
                (record.PromptTokens, record.CompletionTokens, record.CostUsd, record.InFlight, record.KeyId));
        }
    }

    /// <summary>A process killed with a mapped file open leaves it at its reserved size: its lines, then zeros.</summary>
    [Fact]
    public async Task FileLeftAtItsReservedSize_NextStartCutsTheZeros_AndReplaysEveryWholeLine_AlsoAfterAHole()
    {
        Directory.CreateDirectory(_dir);
        var records = Enumerable.Range(0, 3).Select(i => new UsageRecord
        {
            RequestId = Guid.NewGuid(), OccurredAt = _time.GetUtcNow(), KeyId = Guid.NewGuid(), Day = new DateOnly(2026, 12, 5), PromptTokens = i,
        }).ToList();
        var lines = records.Select(r => System.Text.Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(r, UsageJournalJson.Default.UsageRecord) + "\n")).ToList();
        var torn = """{"request_id":"0b"""u8.ToArray();
        var path = Path.Combine(_dir, "usage-20261205115959000-1-000001.jsonl");
        // Two lines, a hole (space a failed copy left), a line, the torn start of one, then the reserved zeros: across several
        // of the cut's 64 KB reads.
        byte[] content = [.. lines[0], .. lines[1], .. new byte[5_000], .. lines[2], .. torn];
        File.WriteAllBytes(path, [.. content, .. new byte[200_000]]);
        var logs = new CapturedLogs();

        using var factory = new Microsoft.Extensions.Logging.LoggerFactory([logs]);
        var journal = Journal(logger: new Microsoft.Extensions.Logging.Logger<UsageJournal>(factory));
        await journal.StartAsync(TestContext.Current.CancellationToken);
        try
        {
            Assert.Equal(content.Length, new FileInfo(path).Length);
            Assert.Equal(content.Length, journal.Bytes); // the spool, as /metrics and readiness report it
            var left = Assert.Single(journal.ToReplay());
            Assert.Equal(records.Select(r => r.RequestId), journal.Read(left).Select(r => r.RequestId));
            Assert.Single(logs.Lines, line => line.Contains("torn line", StringComparison.Ordinal)); // the torn start, not the zeros
        }
        finally
        {
            await journal.StopAsync(TestContext.Current.CancellationToken);
        }
    }

    /// <summary>
    /// A new file that cannot be created (here its name is taken; a full disk, a folder made read-only or no file handles left
    /// do the same) must not stop the journal: appends go on in the full file, past its reserved end, the failure is said once
    /// (until a file opens), files rotate again once a name is free, and the fsync loop outlives a rotation by age that fails.
    /// </summary>
    [Fact]
    public async Task NewFilesThatCannotBeOpened_AppendsGoOnInTheFullFile_FilesRotateAgainOnceOneOpens_AndTheFsyncLoopLivesOn()
    {
        var logs = new CapturedLogs();
        using var factory = new Microsoft.Extensions.Logging.LoggerFactory([logs]);
        var journal = Journal(64 * 1024, 16 * 1024, new Microsoft.Extensions.Logging.Logger<UsageJournal>(factory));
        await journal.StartAsync(TestContext.Current.CancellationToken); // opens file 1
        string Name(DateTimeOffset at, int sequence) => Path.Combine(_dir, $"usage-{at:yyyyMMddHHmmssfff}-{Environment.ProcessId}-{sequence:D6}.jsonl");
        for (var sequence = 2; sequence <= 21; sequence++) File.WriteAllBytes(Name(_time.GetUtcNow(), sequence), []); // the next 20 names taken
        string[] Opened() => Directory.GetFiles(_dir, "usage-*.jsonl").Where(f => new FileInfo(f).Length > 0).ToArray();

        var appended = new List<Guid>();
        for (var i = 0; i < 1_000; i++)
        {
            var record = new UsageRecord
            {
                RequestId = Guid.NewGuid(), OccurredAt = _time.GetUtcNow(), KeyId = Guid.NewGuid(), Day = new DateOnly(2026, 12, 5),
                EndUser = new string('u', 200), PromptTokens = i,
            };
            appended.Add(record.RequestId);
            await journal.AppendAsync(record); // one at a time: every append past a full file tries the next name
        }
        var first = Name(_time.GetUtcNow(), 1);
        Assert.True(new FileInfo(first).Length > 64 * 1024, "the full file did not take the appends on");
        Assert.True(File.Exists(Name(_time.GetUtcNow(), 22)), "no file opened once a name was free");
        Assert.Single(logs.Lines, line => line.Contains("could not be opened", StringComparison.Ordinal));

        // By age: every name the fsync loop could take next is taken too. The loop must outlive the failure (and stop cleanly).
        var later = _time.GetUtcNow().AddSeconds(10);
        for (var sequence = 1; sequence <= 200; sequence++) File.WriteAllBytes(Name(later, sequence), []);
        _time.Advance(TimeSpan.FromSeconds(10));
        // Not ticked on while waiting (TicksUntilAsync): a later tick's file names are free. No pass of the loop has run yet, and
        // it waits on the clock from start on.
        await Eventually.TrueAsync(() => logs.Lines.Count(line => line.Contains("could not be opened", StringComparison.Ordinal)) == 2,
            what: "the fsync loop's rotation was tried");
        await journal.StopAsync(TestContext.Current.CancellationToken);

        var read = Opened().SelectMany(File.ReadLines)
            .Select(line => System.Text.Json.JsonSerializer.Deserialize(line, UsageJournalJson.Default.UsageRecord)!.RequestId).ToList();
        Assert.Equal(appended.Order(), read.Order());
        Assert.All(Opened(), file => Assert.DoesNotContain((byte)0, File.ReadAllBytes(file)));
    }

    /// <summary>
    /// A record journaled again after its file was closed has its latest line in a newer file: that file must stay until the record
    /// is in PostgreSQL (removed earlier, a crash would replay the stale first line or none), and the older file, whose line is
    /// superseded, need not.
    /// </summary>
    [Fact]
    public async Task RecordJournaledAgainInANewerFile_TheNewerFileStaysUntilTheRecordIsWritten_TheOlderOneGoes()
    {
        var journal = Journal();
        await journal.StartAsync(TestContext.Current.CancellationToken);
        string[] Files() => [.. Directory.GetFiles(_dir, "usage-*.jsonl").Order(StringComparer.Ordinal)];
        async Task NextFileAsync(int files)
        {
            _time.Advance(TimeSpan.FromSeconds(10)); // JournalSegmentSeconds: the fsync loop opens a new file and closes this one
            await TicksUntilAsync(() => Files().Length == files, $"{files} journal files");
        }
        try
        {
            var record = new UsageRecord { RequestId = Guid.NewGuid(), OccurredAt = _time.GetUtcNow(), KeyId = Guid.NewGuid(), Day = new DateOnly(2026, 12, 5) };
            await journal.AppendAsync(record);
            await NextFileAsync(2);
            var first = Files()[0];

            record.CompletionTokens = 42; // its state at the end of the request
            await journal.AppendAsync(record);
            // Superseded by the newer line: removed by this append, or by the fsync loop's close of it if that is still running.
            await Eventually.TrueAsync(() => !Files().Contains(first), what: "the older file removed");
            var second = Assert.Single(Files());

            await NextFileAsync(2); // the newer file is closed too, with the record not yet in PostgreSQL
            await journal.StopAsync(TestContext.Current.CancellationToken); // the fsync loop is done: the close has run
            Assert.Contains(second, Files());
            Assert.Equal(42, System.Text.Json.JsonSerializer.Deserialize(File.ReadLines(second).Single(), UsageJournalJson.Default.UsageRecord)!.CompletionTokens);

            journal.Written(record);
            Assert.DoesNotContain(second, Files());
        }
        finally
        {
            await journal.StopAsync(TestContext.Current.CancellationToken);
        }
    }

    /// <summary>
    /// Waits for what the fsync loop does once the fake clock has moved, ticking the clock on (JournalFsyncMilliseconds) while
    /// waiting: after each pass the loop waits on the clock again from the thread pool, so on a loaded machine it may only do so
    /// after the test moved the clock once more.
    /// </summary>
    private Task TicksUntilAsync(Func<bool> done, string what) => Eventually.TrueAsync(() =>
    {
        if (done()) return true;
        _time.Advance(TimeSpan.FromMilliseconds(100));
        return false;
    }, what: what);

    private static bool EndsInZeros(string path)
    {
        using var file = File.OpenRead(path);
        if (file.Length == 0) return false;
        file.Seek(-1, SeekOrigin.End);
        return file.ReadByte() == 0;
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }
}
