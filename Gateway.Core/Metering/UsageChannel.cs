using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Gateway.Core.Metering;

/// <summary>The hot path's only contact with metering: an in-memory queue the <see cref="UsageWriter"/> drains.</summary>
public sealed partial class UsageChannel(IOptions<MeteringOptions> options, ILogger<UsageChannel> logger, UsageJournal? journal = null)
{
    private readonly Channel<UsageRecord> _channel = Channel.CreateBounded<UsageRecord>(
        new BoundedChannelOptions(options.Value.ChannelCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
        });

    internal ChannelReader<UsageRecord> Reader => _channel.Reader;

    internal UsageJournal? Journal => journal is { Enabled: true } ? journal : null;

    /// <summary>Whether records are journaled locally before they are queued.</summary>
    public bool Journaled => Journal is not null;

    /// <summary>Appends the record as it is now to the local journal (before the response's last bytes go out).</summary>
    public ValueTask CheckpointAsync(UsageRecord record) => Journal?.AppendAsync(record) ?? ValueTask.CompletedTask;

    /// <summary>
    /// Queues a record (journaled first, unless it was already). When the queue is full (the database is away for long),
    /// the record stays only in the journal and is replayed from there; without a journal, this waits (back-pressure).
    /// </summary>
    public async ValueTask PublishAsync(UsageRecord record)
    {
        var spool = Journal;
        if (record.Segment is null && spool is not null) await spool.AppendAsync(record);
        if (_channel.Writer.TryWrite(record)) return;
        if (spool is not null && record.Segment is not null)
        {
            UsageJournal.Dropped(record);
            return;
        }
        try
        {
            // A record is money: never cancelled, even when the client is gone.
            await _channel.Writer.WriteAsync(record, CancellationToken.None);
        }
        catch (ChannelClosedException)
        {
            // Only after the writer's final flush (a request outliving shutdown): say what was not stored.
            Log.Late(logger, record.RequestId, record.KeyId, record.Status, record.CostUsd);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1306, Level = LogLevel.Error, Message = "Usage record {RequestId} of key {KeyId} (status {Status}, cost {CostUsd} USD) arrived after the final flush and was not stored")]
        public static partial void Late(ILogger logger, Guid requestId, Guid keyId, short status, decimal costUsd);
    }

    internal void Complete() => _channel.Writer.TryComplete();
}
