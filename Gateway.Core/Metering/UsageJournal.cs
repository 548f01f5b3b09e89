using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Win32.SafeHandles;

namespace Gateway.Core.Metering;

/// <summary>One file of the journal: records appended while it was current, and how many are not in PostgreSQL yet.</summary>
public sealed class JournalSegment
{
    internal JournalSegment(string path, SafeFileHandle? handle)
    {
        Path = path;
        Handle = handle;
    }

    public string Path { get; }
    internal SafeFileHandle? Handle { get; set; }
    internal long Length;
    internal int Pending;
    /// <summary>No more appends; its file goes once every record is written (or it was replayed).</summary>
    internal volatile bool Closed;
    /// <summary>Some record of it is not held in memory any more (the queue was full, or it was left by an earlier process): replay the file.</summary>
    internal volatile bool NeedsReplay;
    /// <summary>Left by an earlier process: its in-flight lines are requests that process never finished.</summary>
    internal bool LeftByEarlierRun;
    internal bool Dirty;
}

/// <summary>
/// The local usage journal: every usage record is appended (a write to the page cache) before its response's last
/// bytes go out, so a crash or <c>kill -9</c> loses no record, and a database outage of any length the disk can
/// hold loses none either. Files are fsync'd in groups (<see cref="MeteringOptions.JournalFsyncMilliseconds"/>),
/// which bounds what a power cut can lose. A file is removed once every record in it is in PostgreSQL; files
/// left by an earlier process, and files with records the in-memory queue had no room for, are replayed by the
/// usage writer (idempotent on request id). Each request also journals an in-flight line before its upstream call, so a request
/// the process never finished (killed mid-stream) still leaves its row at the next start.
/// </summary>
public sealed partial class UsageJournal : IHostedService, IDisposable
{
    private readonly MeteringOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<UsageJournal> _logger;
    private readonly string _directory;
    private readonly Lock _lock = new();
    private readonly Lock _writeLock = new();
    private List<Queued> _queued = [];
    private List<Queued> _spare = [];
    private TaskCompletionSource? _nextWrite;
    private bool _writing;
    private readonly List<JournalSegment> _segments = [];
    private readonly CancellationTokenSource _stop = new();
    private JournalSegment? _current;
    private long _currentOpenedAt;
    private long _sequence;
    private Task _loop = Task.CompletedTask;
    private FileStream? _directoryLock;
    private int _stopped;

    public UsageJournal(IOptions<MeteringOptions> options, IHostEnvironment environment, TimeProvider time, ILogger<UsageJournal> logger)
    {
        _options = options.Value;
        _time = time;
        _logger = logger;
        var dir = _options.JournalDirectory;
        _directory = System.IO.Path.IsPathRooted(dir) ? dir : System.IO.Path.Combine(environment.ContentRootPath, dir);
    }

    public bool Enabled => _options.Journal;

    /// <summary>
    /// The journal directory's own id (kept in a file there; null: journal off, or not started). Every process that writes this
    /// directory registers it (<c>gateway_instances.journal_id</c>), so a later start knows which earlier run's leases its
    /// replay settles.
    /// </summary>
    public Guid? Id { get; private set; }

    /// <summary>Every file an earlier process left here is in PostgreSQL (true when there was none).</summary>
    public bool EarlierRunsStored
    {
        get
        {
            lock (_lock) return !_segments.Any(s => s.LeftByEarlierRun);
        }
    }

    /// <summary>Bytes in journal files (the spool), for metrics and readiness.</summary>
    public long Bytes
    {
        get
        {
            lock (_lock) return _segments.Sum(s => Interlocked.Read(ref s.Length));
        }
    }

    /// <summary>Files waiting to be replayed into PostgreSQL.</summary>
    public int SegmentsToReplay
    {
        get
        {
            lock (_lock) return _segments.Count(s => s.Closed && s.NeedsReplay);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (!Enabled) return Task.CompletedTask;
        // Records name end users: the journal is the gateway's alone (0700 folder, 0600 files).
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(_directory);
        else Directory.CreateDirectory(_directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        try
        {
            // One instance per directory: another one's live files are not "left by an earlier run".
            _directoryLock = new FileStream(System.IO.Path.Combine(_directory, ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException ex)
        {
            throw new InvalidOperationException(
                $"Another gateway instance uses the usage journal in {_directory}; give each instance its own Gateway:Metering:JournalDirectory.", ex);
        }
        Id = ReadOrCreateId(System.IO.Path.Combine(_directory, "journal-id"));
        lock (_lock)
        {
            // Left by an earlier process (a crash, a kill, an outage it did not outlive): replay them all.
            foreach (var file in Directory.GetFiles(_directory, "usage-*.jsonl").Order(StringComparer.Ordinal))
            {
                var left = new JournalSegment(file, null) { Closed = true, NeedsReplay = true, LeftByEarlierRun = true, Length = new FileInfo(file).Length };
                _segments.Add(left);
                Log.Found(_logger, file, left.Length);
            }
            OpenSegment();
        }
        _loop = Task.Run(() => RunAsync(_stop.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    private static Guid ReadOrCreateId(string path)
    {
        if (File.Exists(path) && Guid.TryParse(File.ReadAllText(path).Trim(), out var id)) return id;
        id = Guid.NewGuid();
        var temporary = path + ".tmp";
        var write = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) write.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var file = new FileStream(temporary, write))
        {
            file.Write(System.Text.Encoding.ASCII.GetBytes(id.ToString()));
            file.Flush(flushToDisk: true);
        }
        File.Move(temporary, path, overwrite: true); // whole or absent, never torn
        return id;
    }

    /// <summary>
    /// Appends a record (its state now) to the current file: one write to the page cache, no fsync. Appends that arrive
    /// while a write is in progress are written together by the next one (group commit), so under load a write carries
    /// many records and requests do not queue on the file one syscall at a time. Completes once the record is written.
    /// </summary>
    public ValueTask AppendAsync(UsageRecord record)
    {
        if (!Enabled) return ValueTask.CompletedTask;
        var line = Line(record);
        lock (_lock)
        {
            if (_current?.Handle is null) // stopped: the record still goes to the queue
            {
                ArrayPool<byte>.Shared.Return(line.Array!);
                return ValueTask.CompletedTask;
            }
            _queued.Add(new Queued(record, line));
            if (_writing) return new ValueTask((_nextWrite ??= new(TaskCreationOptions.RunContinuationsAsynchronously)).Task);
            _writing = true;
        }
        // This caller writes its own record now, with any that queued meanwhile; later ones are written off its path.
        if (WriteQueued()) ThreadPool.UnsafeQueueUserWorkItem(static journal => journal.Drain(), this, preferLocal: false);
        return ValueTask.CompletedTask;
    }

    [ThreadStatic] private static ArrayBufferWriter<byte>? t_lineBuffer;
    [ThreadStatic] private static Utf8JsonWriter? t_lineWriter;

    // The record as one JSON line with its newline, in a pooled array that goes back to the pool once the line is written.
    private static ArraySegment<byte> Line(UsageRecord record)
    {
        var buffer = t_lineBuffer ??= new ArrayBufferWriter<byte>(1024);
        buffer.ResetWrittenCount();
        var writer = t_lineWriter ??= new Utf8JsonWriter(buffer);
        writer.Reset(buffer);
        JsonSerializer.Serialize(writer, record, UsageJournalJson.Default.UsageRecord);
        writer.Flush();
        var json = buffer.WrittenSpan;
        var line = ArrayPool<byte>.Shared.Rent(json.Length + 1);
        json.CopyTo(line);
        line[json.Length] = (byte)'\n';
        if (buffer.Capacity > 64 * 1024) (t_lineBuffer, t_lineWriter) = (null, null); // an outsized record's buffer is not kept by the thread
        return new ArraySegment<byte>(line, 0, json.Length + 1);
    }

    private void Drain()
    {
        while (WriteQueued()) { }
    }

    /// <summary>Writes what is queued in one gather write; true when more queued meanwhile (the caller is still the writer).</summary>
    private bool WriteQueued()
    {
        List<Queued> batch;
        TaskCompletionSource? written;
        lock (_writeLock) // a new file is opened only between writes, so a write never meets a closed handle
        {
            JournalSegment? segment;
            long offset;
            lock (_lock)
            {
                (batch, _queued, _spare) = (_queued, _spare, _queued);
                (written, _nextWrite) = (_nextWrite, null);
                segment = _current;
                offset = segment?.Length ?? 0;
                if (segment?.Handle is not null)
                {
                    foreach (var queued in batch)
                    {
                        segment.Length += queued.Line.Count;
                        if (queued.Record.Segment is null)
                        {
                            Interlocked.Increment(ref segment.Pending); // Written() decrements without the lock
                            queued.Record.Segment = segment;
                        }
                    }
                    segment.Dirty = true;
                }
            }
            if (segment?.Handle is { } handle)
            {
                var buffers = new ReadOnlyMemory<byte>[batch.Count];
                for (var i = 0; i < batch.Count; i++) buffers[i] = batch[i].Line;
                try
                {
                    RandomAccess.Write(handle, buffers, offset);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ObjectDisposedException)
                {
                    // A full or failing disk: the records still go to PostgreSQL from the in-memory queue; the file's
                    // lines are lost, so keep it for replay rather than trusting it. Never thrown on: the appenders
                    // waiting for this write must be released.
                    segment.NeedsReplay = true;
                    Log.WriteFailed(_logger, ex.Message);
                }
            }
        }
        foreach (var queued in batch) ArrayPool<byte>.Shared.Return(queued.Line.Array!);
        batch.Clear();
        written?.TrySetResult();
        lock (_lock)
        {
            if (_queued.Count > 0) return true;
            _writing = false;
            return false;
        }
    }

    private readonly record struct Queued(UsageRecord Record, ArraySegment<byte> Line);

    /// <summary>The record is in PostgreSQL (and with it its in-flight line is spent).</summary>
    public void Written(UsageRecord record)
    {
        if (record.InFlightLine is { } line)
        {
            record.InFlightLine = null;
            Written(line);
        }
        if (record.Segment is not { } segment) return;
        record.Segment = null;
        if (Interlocked.Decrement(ref segment.Pending) == 0 && segment.Closed && !segment.NeedsReplay) Remove(segment);
    }

    /// <summary>The record is not held in memory (the queue is full): its file must be replayed.</summary>
    public static void Dropped(UsageRecord record)
    {
        if (record.Segment is { } segment) segment.NeedsReplay = true;
    }

    /// <summary>Closed files that hold records PostgreSQL may not have, oldest first.</summary>
    internal IReadOnlyList<JournalSegment> ToReplay()
    {
        lock (_lock) return [.. _segments.Where(s => s.Closed && s.NeedsReplay)];
    }

    /// <summary>Reads a file's records; a torn last line (a crash mid-write) is skipped.</summary>
    internal IEnumerable<UsageRecord> Read(JournalSegment segment)
    {
        foreach (var line in File.ReadLines(segment.Path))
        {
            if (line.Length == 0) continue;
            UsageRecord? record;
            try
            {
                record = JsonSerializer.Deserialize(line, UsageJournalJson.Default.UsageRecord);
            }
            catch (JsonException)
            {
                Log.TornLine(_logger, segment.Path);
                continue;
            }
            if (record is not null) yield return record;
        }
    }

    /// <summary>A replayed file is in PostgreSQL: remove it.</summary>
    internal void Replayed(JournalSegment segment) => Remove(segment);

    private void Remove(JournalSegment segment)
    {
        lock (_lock)
        {
            if (!_segments.Remove(segment)) return;
        }
        try
        {
            File.Delete(segment.Path);
        }
        catch (IOException ex)
        {
            Log.RemoveFailed(_logger, segment.Path, ex.Message);
        }
    }

    private void OpenSegment()
    {
        var path = System.IO.Path.Combine(_directory, $"usage-{_time.GetUtcNow():yyyyMMddHHmmssfff}-{Environment.ProcessId}-{++_sequence:D6}.jsonl");
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(handle, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _current = new JournalSegment(path, handle);
        _segments.Add(_current);
        _currentOpenedAt = _time.GetTimestamp();
    }

    // Group fsync every JournalFsyncMilliseconds; a new file every JournalSegmentSeconds, so written files can go.
    private async Task RunAsync(CancellationToken ct)
    {
        var every = TimeSpan.FromMilliseconds(_options.JournalFsyncMilliseconds);
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(every, _time, ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            JournalSegment? closed = null;
            SafeFileHandle? toSync;
            lock (_writeLock)
            lock (_lock)
            {
                toSync = _current is { Dirty: true } current ? current.Handle : null;
                if (_current is not null) _current.Dirty = false;
                if (_time.GetElapsedTime(_currentOpenedAt) >= TimeSpan.FromSeconds(_options.JournalSegmentSeconds))
                {
                    closed = _current;
                    OpenSegment();
                }
            }
            try
            {
                if (toSync is not null) RandomAccess.FlushToDisk(toSync);
                if (closed is not null) Close(closed);
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException)
            {
                Log.SyncFailed(_logger, ex.Message);
            }
        }
    }

    private void Close(JournalSegment segment)
    {
        if (segment.Handle is { } handle)
        {
            RandomAccess.FlushToDisk(handle);
            handle.Dispose();
            segment.Handle = null;
        }
        segment.Closed = true;
        if (Volatile.Read(ref segment.Pending) == 0 && !segment.NeedsReplay) Remove(segment);
    }

    /// <summary>
    /// After the usage writer's final flush: the current file is synced and closed, and removed if everything in it was
    /// written; otherwise it stays for the next start to replay.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // Once only, and not after Dispose (a host stopped twice, or disposed first).
        if (!Enabled || Interlocked.Exchange(ref _stopped, 1) == 1) return;
        await _stop.CancelAsync();
        await _loop;
        JournalSegment? last;
        lock (_writeLock)
        lock (_lock)
        {
            last = _current;
            _current = null;
        }
        if (last is not null)
        {
            last.NeedsReplay |= Volatile.Read(ref last.Pending) > 0;
            try
            {
                Close(last);
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException)
            {
                // Seen once in CI: its handle was already closed (the host disposed while stopping). Its lines are in the
                // file all the same (written before); the file stays for the next start to replay if it still has records.
                Log.SyncFailed(_logger, ex.Message);
            }
        }
    }

    public void Dispose()
    {
        Interlocked.Exchange(ref _stopped, 1);
        _stop.Dispose();
        _directoryLock?.Dispose();
        lock (_lock)
        {
            foreach (var segment in _segments) segment.Handle?.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1320, Level = LogLevel.Warning, Message = "Usage journal {Path} ({Bytes} bytes) was left by an earlier run; replaying it")]
        public static partial void Found(ILogger logger, string path, long bytes);

        [LoggerMessage(EventId = 1321, Level = LogLevel.Warning, Message = "Usage journal {Path} ends in a torn line (a crash mid-write); skipped it")]
        public static partial void TornLine(ILogger logger, string path);

        [LoggerMessage(EventId = 1322, Level = LogLevel.Warning, Message = "Usage journal {Path} could not be removed: {Error}")]
        public static partial void RemoveFailed(ILogger logger, string path, string error);

        [LoggerMessage(EventId = 1323, Level = LogLevel.Error, Message = "Usage journal sync failed: {Error}")]
        public static partial void SyncFailed(ILogger logger, string error);

        [LoggerMessage(EventId = 1324, Level = LogLevel.Error, Message = "Usage journal write failed: {Error}")]
        public static partial void WriteFailed(ILogger logger, string error);
    }
}

[JsonSerializable(typeof(UsageRecord))]
// Nulls are left out: a missing field reads back as null, and an in-flight line (most fields still null) is shorter to write.
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
internal sealed partial class UsageJournalJson : JsonSerializerContext;
