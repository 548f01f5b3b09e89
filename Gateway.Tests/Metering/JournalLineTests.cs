using Gateway.Core.Metering;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Metering;

/// <summary>
/// Journal lines are serialised into pooled buffers that go back to the pool once written: a buffer reused too early, or a line
/// written from another's buffer, would put one request's record in another's line. Many appenders at once, records of very
/// different sizes (one far past the size a thread keeps its buffer at), and every line read back must be the record appended.
/// </summary>
public sealed class JournalLineTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "gw-journal-lines-" + Guid.NewGuid().ToString("N")[..8]);

    [Fact]
    public async Task Lines_AppendedConcurrently_EachReadBackAsTheRecordAppended()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 5, 12, 0, 0, TimeSpan.Zero));
        var journal = new UsageJournal(Options.Create(new MeteringOptions { JournalDirectory = _dir }),
            new HostingEnvironment { ContentRootPath = Path.GetTempPath() }, time, NullLogger<UsageJournal>.Instance);
        await journal.StartAsync(TestContext.Current.CancellationToken);

        var appended = new System.Collections.Concurrent.ConcurrentDictionary<Guid, UsageRecord>();
        await Parallel.ForEachAsync(Enumerable.Range(0, 4_000), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
        {
            var record = new UsageRecord
            {
                RequestId = Guid.NewGuid(), OccurredAt = time.GetUtcNow(), KeyId = Guid.NewGuid(), Day = new DateOnly(2026, 12, 5),
                // Sizes from a few bytes to 100 KB, so lines change buffers and one thread's outsized buffer is let go.
                EndUser = new string((char)('a' + i % 26), i % 97 == 0 ? 100_000 : i % 300),
                AskedModel = i % 2 == 0 ? "gpt-4o-mini" : null, // nulls are left out of the line, and read back as null
                PromptTokens = i, CompletionTokens = i * 2, CostUsd = i / 1000m, InFlight = i % 3 == 0,
            };
            appended[record.RequestId] = record;
            await journal.AppendAsync(record);
        });
        await journal.StopAsync(TestContext.Current.CancellationToken);

        var read = Directory.GetFiles(_dir, "usage-*.jsonl").SelectMany(File.ReadLines)
            .Select(line => System.Text.Json.JsonSerializer.Deserialize(line, UsageJournalJson.Default.UsageRecord)!).ToList();
        Assert.Equal(appended.Count, read.Count);
        foreach (var record in read)
        {
            var expected = appended[record.RequestId];
            Assert.Equal(expected.EndUser, record.EndUser);
            Assert.Equal(expected.AskedModel, record.AskedModel);
            Assert.Equal((expected.PromptTokens, expected.CompletionTokens, expected.CostUsd, expected.InFlight, expected.KeyId),
                (record.PromptTokens, record.CompletionTokens, record.CostUsd, record.InFlight, record.KeyId));
        }
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }
}
