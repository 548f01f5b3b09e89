using System.Buffers;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
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
    /// <summary>The file mapped into memory, its space reserved (Linux): appends are copies into it. Null: appends are writes.</summary>
    internal MemoryMappedFile? Map;
    /// <summary>The part of <see cref="Map"/> appends copy into now, from <see cref="WindowStart"/>.</summary>
    internal MemoryMappedViewStream? Window;
    internal long WindowStart;
}

/// <summary>
/// The local usage journal: every usage record is appended (a write to the page cache) before its response's last
/// bytes go out, so a crash or <c>kill -9</c> loses no record, and a database outage of any length the disk can
/// hold loses none either. Files are fsync'd in groups (<see cref="MeteringOptions.JournalFsyncMilliseconds"/>),
/// which bounds what a power cut can lose. A file is removed once every record whose latest line it holds is in PostgreSQL; files
/// left by an earlier process, and files with records the in-memory queue had no room for, are replayed by the
/// usage writer (idempotent on request id). Each request also journals an in-flight line before its upstream call, so a request
/// the process never finished (killed mid-stream) still leaves its row at the next start.
/// <para>
/// On Linux a file's space is reserved when it opens (<see cref="MappedBytes"/>, <c>fallocate</c>) and the file is mapped
/// into memory: an append is a copy into the page cache, the same place a write puts it (as safe against <c>kill -9</c>), with
/// no system call. A full file makes way for a new one; a closed file is cut to what was appended. Where the space cannot be
/// reserved or kept (another OS, a file system without <c>fallocate</c> or a copy-on-write one, a full disk,
/// <see cref="MeteringOptions.JournalMemoryMapped"/> off) appends are writes, as a copy into a mapping of space the disk does
/// not have would kill the process (SIGBUS) where a write fails with an error.
/// </para>
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
    /// <summary>Files that filled up: closed by the next tick of the fsync loop.</summary>
    private readonly List<JournalSegment> _full = [];
    private readonly CancellationTokenSource _stop = new();
    private JournalSegment? _current;
    private long _currentOpenedAt;
    private long _sequence;
    private Task _loop = Task.CompletedTask;
    private FileStream? _directoryLock;
    private int _stopped;
    private int _notReservedSaid;
    private bool _mapped;
    private bool _openFailedSaid;

    public UsageJournal(IOptions<MeteringOptions> options, IHostEnvironment environment, TimeProvider time, ILogger<UsageJournal> logger)
    {
        _options = options.Value;
        _time = time;
        _logger = logger;
        var dir = _options.JournalDirectory;
        _directory = System.IO.Path.IsPathRooted(dir) ? dir : System.IO.Path.Combine(environment.ContentRootPath, dir);
    }

    public bool Enabled => _options.Journal;

    /// <summary>A mapped file's reserved size; the settable size is for tests.</summary>
    internal long MappedBytes { get; init; } = 16 << 20;

    /// <summary>How much of a mapped file is mapped at once (the process's resident share of the journal).</summary>
    internal long WindowBytes { get; init; } = 1 << 20;

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
        _mapped = MapsFiles();
        lock (_lock)
        {
            // Left by an earlier process (a crash, a kill, an outage it did not outlive): replay them all.
            foreach (var file in Directory.GetFiles(_directory, "usage-*.jsonl").Order(StringComparer.Ordinal))
            {
                var left = new JournalSegment(file, null) { Closed = true, NeedsReplay = true, LeftByEarlierRun = true, Length = CutReservedTail(file) };
                _segments.Add(left);
                Log.Found(_logger, file, left.Length);
            }
            _current = OpenSegment();
        }
        // Called, not queued: the loop waits on the clock before StartAsync returns, so a clock that moves right after start
        // (a test's FakeTimeProvider) is never missed. Its first await is that wait; every pass after it runs on the thread pool.
        _loop = RunAsync(_stop.Token);
        return Task.CompletedTask;
    }

    /// <summary>
    /// A mapped file its process never closed ends in reserved space, zeros (JSON lines hold no zero byte): cuts the file
    /// after its last line, or the torn start of one, and returns its length.
    /// </summary>
    private long CutReservedTail(string path)
    {
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Not ours to cut (read-only): replay reads past the zeros all the same.
            Log.NotCut(_logger, path, ex.Message);
            return new FileInfo(path).Length;
        }
        using var _ = handle;
        var length = RandomAccess.GetLength(handle);
        var end = length;
        var chunk = new byte[64 * 1024];
        while (end > 0)
        {
            var start = Math.Max(0, end - chunk.Length);
            var read = chunk.AsSpan(0, RandomAccess.Read(handle, chunk.AsSpan(0, (int)(end - start)), start));
            var last = read.LastIndexOfAnyExcept((byte)0);
            if (last >= 0)
            {
                end = start + last + 1;
                break;
            }
            end = start;
        }
        if (end < length) RandomAccess.SetLength(handle, end);
        return end;
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
        List<JournalSegment>? superseded = null;
        lock (_writeLock) // a new file is opened only between writes, so a write never meets a closed handle
        {
            JournalSegment? segment;
            long offset;
            long bytes = 0;
            lock (_lock)
            {
                (batch, _queued, _spare) = (_queued, _spare, _queued);
                (written, _nextWrite) = (_nextWrite, null);
                foreach (var queued in batch) bytes += queued.Line.Count;
                segment = _current;
                if (segment?.Map is not null && segment.Length > 0 && segment.Length + bytes > MappedBytes) segment = NextFile(segment);
                offset = segment?.Length ?? 0;
                if (segment?.Handle is not null)
                {
                    foreach (var queued in batch)
                    {
                        segment.Length += queued.Line.Count;
                        // A record is counted in the file of its latest line (journaled again, it may be a newer file than its
                        // first line's): that file stays until the record is in PostgreSQL, and an earlier one may go.
                        if (queued.Record.Segment is var earlier && earlier == segment) continue;
                        Interlocked.Increment(ref segment.Pending); // Written() decrements without the lock
                        queued.Record.Segment = segment;
                        if (earlier is not null && Interlocked.Decrement(ref earlier.Pending) == 0 && earlier.Closed && !earlier.NeedsReplay)
                            (superseded ??= []).Add(earlier);
                    }
                    segment.Dirty = true;
                }
            }
            if (segment?.Handle is { } handle)
            {
                try
                {
                    if (segment.Map is not null && offset + bytes <= MappedBytes) Copy(segment, batch, offset, bytes);
                    else
                    {
                        // Unmapped, or one batch larger than a whole file: a write (coherent with the mapping) grows the file.
                        var buffers = new ReadOnlyMemory<byte>[batch.Count];
                        for (var i = 0; i < batch.Count; i++) buffers[i] = batch[i].Line;
                        RandomAccess.Write(handle, buffers, offset);
                    }
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
        if (superseded is not null) foreach (var earlier in superseded) Remove(earlier);
        lock (_lock)
        {
            if (_queued.Count > 0) return true;
            _writing = false;
            return false;
        }
    }

    private readonly record struct Queued(UsageRecord Record, ArraySegment<byte> Line);

    /// <summary>The mapped file is full: the next one takes appends, and the fsync loop closes this one. Under both locks.</summary>
    private JournalSegment NextFile(JournalSegment full)
    {
        if (TryOpenSegment() is not { } next) return full; // appends go on as writes past its reserved end
        _full.Add(full);
        return _current = next;
    }

    /// <summary>Copies the batch (<paramref name="bytes"/> long) into the mapping at <paramref name="offset"/>, moving the window on first. Under the write lock.</summary>
    private void Copy(JournalSegment segment, List<Queued> batch, long offset, long bytes)
    {
        if (segment.Window is not { } window || offset < segment.WindowStart || offset + bytes > segment.WindowStart + window.Capacity)
        {
            Unmap(segment.Window);
            segment.Window = null; // a failed map below leaves none, and the next batch maps again
            window = segment.Window = segment.Map!.CreateViewStream(offset, Math.Min(MappedBytes - offset, Math.Max(WindowBytes, bytes)),
                MemoryMappedFileAccess.ReadWrite);
            segment.WindowStart = offset;
        }
        window.Position = offset - segment.WindowStart;
        foreach (var queued in batch) window.Write(queued.Line.Array!, queued.Line.Offset, queued.Line.Count);
    }

    /// <summary>
    /// Unmaps a window without the <c>msync</c> its Dispose does: the copied pages stay in the page cache and reach the disk
    /// with the file's next fsync, like written ones.
    /// </summary>
    private static void Unmap(MemoryMappedViewStream? window)
    {
        if (window is null) return;
        window.SafeMemoryMappedViewHandle.Dispose();
        window.Dispose();
    }

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

    /// <summary>Reads a file's records; a torn line (a crash mid-write) is skipped.</summary>
    internal IEnumerable<UsageRecord> Read(JournalSegment segment)
    {
        foreach (var read in File.ReadLines(segment.Path))
        {
            // Zeros are a hole (space a failed write or copy left: its records went to PostgreSQL from memory), possibly after the
            // torn start of a line: a whole line can only follow the last zero.
            var line = read[(read.LastIndexOf('\0') + 1)..];
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

    /// <summary>Opens the next file (under the lock); the caller makes it current.</summary>
    private JournalSegment OpenSegment()
    {
        var path = System.IO.Path.Combine(_directory, $"usage-{_time.GetUtcNow():yyyyMMddHHmmssfff}-{Environment.ProcessId}-{++_sequence:D6}.jsonl");
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        JournalSegment segment;
        try
        {
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(handle, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            segment = new JournalSegment(path, handle) { Map = MapReserved(handle) };
        }
        catch
        {
            handle.Dispose();
            File.Delete(path);
            throw;
        }
        _segments.Add(segment);
        _currentOpenedAt = _time.GetTimestamp();
        return segment;
    }

    /// <summary>
    /// <see cref="OpenSegment"/> where a failure must not stop the journal (a full disk, a folder made read-only, out of file
    /// handles): null, and the current file takes the appends on. Said once per run of failures.
    /// </summary>
    private JournalSegment? TryOpenSegment()
    {
        try
        {
            var segment = OpenSegment();
            _openFailedSaid = false;
            return segment;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            if (!_openFailedSaid) Log.OpenFailed(_logger, ex.Message);
            _openFailedSaid = true;
            return null;
        }
    }

    /// <summary>Reserves the new file's <see cref="MappedBytes"/> and maps it; null where that cannot be done (appends are writes).</summary>
    private MemoryMappedFile? MapReserved(SafeFileHandle handle)
    {
        if (!_mapped) return null;
        if (Native.fallocate((int)handle.DangerousGetHandle(), 0, 0, MappedBytes) != 0)
        {
            NotReserved(new System.ComponentModel.Win32Exception(Marshal.GetLastPInvokeError()).Message);
            RandomAccess.SetLength(handle, 0); // a failed reservation can leave the file partly grown
            return null;
        }
        try
        {
            return MemoryMappedFile.CreateFromFile(handle, null, MappedBytes, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: true);
        }
        catch (IOException ex)
        {
            NotReserved(ex.Message);
            RandomAccess.SetLength(handle, 0);
            return null;
        }
    }

    /// <summary>
    /// Whether files are mapped: on 64-bit Linux (where <c>fallocate</c> takes a 64-bit offset), with the setting on, and not
    /// on a copy-on-write file system, where reserved space is not kept for the file (a snapshot shares it), so a copy could
    /// still meet a full disk.
    /// </summary>
    private bool MapsFiles()
    {
        if (!_options.JournalMemoryMapped || !OperatingSystem.IsLinux() || !Environment.Is64BitProcess) return false;
        string format;
        try
        {
            format = new DriveInfo(_directory).DriveFormat;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            NotReserved(ex.Message);
            return false;
        }
        if (format is "btrfs" or "zfs" or "bcachefs")
        {
            NotReserved($"{format} is copy-on-write");
            return false;
        }
        return true;
    }

    private void NotReserved(string error)
    {
        if (Interlocked.Exchange(ref _notReservedSaid, 1) == 0) Log.NotReserved(_logger, error);
    }

    private static class Native
    {
        /// <summary>glibc's and musl's <c>fallocate(2)</c>: mode 0 reserves the blocks and sets the file's size.</summary>
        [DllImport("libc", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        internal static extern int fallocate(int fd, int mode, long offset, long length);
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
            JournalSegment[] full;
            lock (_writeLock)
            lock (_lock)
            {
                full = [.. _full];
                _full.Clear();
                toSync = _current is { Dirty: true } current ? current.Handle : null;
                if (_current is not null) _current.Dirty = false;
                if (_time.GetElapsedTime(_currentOpenedAt) >= TimeSpan.FromSeconds(_options.JournalSegmentSeconds) && TryOpenSegment() is { } next)
                {
                    closed = _current;
                    _current = next;
                }
            }
            try
            {
                if (toSync is not null) RandomAccess.FlushToDisk(toSync);
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException)
            {
                Log.SyncFailed(_logger, ex.Message);
            }
            foreach (var segment in full) TryClose(segment);
            if (closed is not null) TryClose(closed);
        }
    }

    /// <summary>
    /// Closes a file that takes no more appends; a failure is logged, and the other files are closed all the same. (Seen once
    /// in CI at stop: a handle already closed, the host disposed while stopping. The lines are in the file all the same.)
    /// </summary>
    private void TryClose(JournalSegment segment)
    {
        try
        {
            Close(segment);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            Log.SyncFailed(_logger, ex.Message);
        }
    }

    private void Close(JournalSegment segment)
    {
        try
        {
            if (segment.Handle is { } handle)
            {
                if (segment.Map is { } map)
                {
                    Unmap(segment.Window);
                    map.Dispose();
                    (segment.Window, segment.Map) = (null, null);
                    // The reserved space after the last line goes (left, it is zeros that replay skips and the next start cuts).
                    RandomAccess.SetLength(handle, Interlocked.Read(ref segment.Length));
                }
                RandomAccess.FlushToDisk(handle);
            }
        }
        finally
        {
            segment.Handle?.Dispose();
            segment.Handle = null;
            segment.Closed = true; // also when the cut or sync failed: its records still leave it as they are written
        }
        // Written() decrements Pending and then reads Closed; this sets Closed and then reads Pending: the barrier makes at least
        // one of the two see the other (and Remove is idempotent).
        Interlocked.MemoryBarrier();
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
        JournalSegment[] full;
        lock (_writeLock)
        lock (_lock)
        {
            last = _current;
            _current = null;
            full = [.. _full];
            _full.Clear();
        }
        // The files that filled up, then the current one; with records still pending, each stays for the next start's replay.
        foreach (var segment in last is null ? full : [.. full, last])
        {
            segment.NeedsReplay |= Volatile.Read(ref segment.Pending) > 0;
            TryClose(segment);
        }
    }

    public void Dispose()
    {
        Interlocked.Exchange(ref _stopped, 1);
        _stop.Dispose();
        _directoryLock?.Dispose();
        lock (_lock)
        {
            foreach (var segment in _segments)
            {
                Unmap(segment.Window);
                segment.Map?.Dispose();
                segment.Handle?.Dispose();
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1320, Level = LogLevel.Warning, Message = "Usage journal {Path} ({Bytes} bytes) was left by an earlier run; replaying it")]
        public static partial void Found(ILogger logger, string path, long bytes);

        [LoggerMessage(EventId = 1321, Level = LogLevel.Warning, Message = "Usage journal {Path} has a torn line (a crash mid-write); skipped it")]
        public static partial void TornLine(ILogger logger, string path);

        [LoggerMessage(EventId = 1322, Level = LogLevel.Warning, Message = "Usage journal {Path} could not be removed: {Error}")]
        public static partial void RemoveFailed(ILogger logger, string path, string error);

        [LoggerMessage(EventId = 1323, Level = LogLevel.Error, Message = "Usage journal file could not be synced or closed: {Error}")]
        public static partial void SyncFailed(ILogger logger, string error);

        [LoggerMessage(EventId = 1324, Level = LogLevel.Error, Message = "Usage journal write failed: {Error}")]
        public static partial void WriteFailed(ILogger logger, string error);

        [LoggerMessage(EventId = 1325, Level = LogLevel.Error, Message = "Usage journal: a new file could not be opened ({Error}); appends go on in the current one (said once until one opens)")]
        public static partial void OpenFailed(ILogger logger, string error);

        [LoggerMessage(EventId = 1327, Level = LogLevel.Warning, Message = "Usage journal {Path}: its reserved tail could not be cut ({Error}); replay reads past it")]
        public static partial void NotCut(ILogger logger, string path, string error);

        [LoggerMessage(EventId = 1326, Level = LogLevel.Information,
            Message = "Usage journal: files are not mapped ({Error}); appends are writes (said once per process)")]
        public static partial void NotReserved(ILogger logger, string error);
    }
}

[JsonSerializable(typeof(UsageRecord))]
// Nulls are left out: a missing field reads back as null, and an in-flight line (most fields still null) is shorter to write.
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
internal sealed partial class UsageJournalJson : JsonSerializerContext;
