using System.ComponentModel.DataAnnotations;

namespace Gateway.Core.Metering;

/// <summary>Settings for the usage pipeline (section <c>Gateway:Metering</c>).</summary>
public sealed class MeteringOptions
{
    public const string SectionName = "Gateway:Metering";

    /// <summary>
    /// Records held in memory for the writer. When it is full (a long database outage) records live only in the journal and
    /// are replayed from it; with the journal off, requests wait instead (back-pressure, never a drop).
    /// </summary>
    [Range(1_000, 10_000_000)]
    public int ChannelCapacity { get; set; } = 200_000;

    /// <summary>Most records written in one COPY transaction.</summary>
    [Range(1, 100_000)]
    public int BatchSize { get; set; } = 5_000;

    /// <summary>
    /// How long the writer lets records gather after the first one arrives, when fewer than a batch are waiting: at low
    /// rates a transaction per request would cost more (in the gateway and in PostgreSQL) than the requests themselves.
    /// Records are in the journal meanwhile; 0 writes at once.
    /// </summary>
    [Range(0, 10_000)]
    public int FlushIntervalMilliseconds { get; set; } = 100;

    /// <summary>On shutdown, the most time spent writing what is still queued (after the web server stopped).</summary>
    [Range(1, 3600)]
    public int FlushTimeoutSeconds { get; set; } = 60;

    /// <summary>Append every record to a local journal before its response ends (no loss on a crash or a database outage).</summary>
    public bool Journal { get; set; } = true;

    /// <summary>
    /// On 64-bit Linux, outside copy-on-write file systems: each journal file reserves its space and is mapped into memory, so an
    /// append is a copy, not a system call. Off: every append is a write.
    /// </summary>
    public bool JournalMemoryMapped { get; set; } = true;

    /// <summary>Where the journal's files live (relative paths: under the content root). Keep it on a persistent disk.</summary>
    public string JournalDirectory { get; set; } = "data/usage-journal";

    /// <summary>How often appended records are fsync'd: what a power cut (not a process crash) can lose at most.</summary>
    [Range(1, 10_000)]
    public int JournalFsyncMilliseconds { get; set; } = 100;

    /// <summary>How long one journal file takes appends; written files are removed, so this bounds the disk a healthy gateway uses.</summary>
    [Range(1, 3600)]
    public int JournalSegmentSeconds { get; set; } = 10;
}
