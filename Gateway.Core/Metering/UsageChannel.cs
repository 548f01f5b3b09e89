using System.Threading.Channels;
using Microsoft.Extensions.Options;

namespace Gateway.Core.Metering;

/// <summary>The hot path's only contact with metering: an in-memory queue the <see cref="UsageWriter"/> drains.</summary>
public sealed class UsageChannel(IOptions<MeteringOptions> options)
{
    private readonly Channel<UsageRecord> _channel = Channel.CreateBounded<UsageRecord>(
        new BoundedChannelOptions(options.Value.ChannelCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
        });

    internal ChannelReader<UsageRecord> Reader => _channel.Reader;

    /// <summary>Queues a record; waits only when the writer is far behind (back-pressure instead of loss).</summary>
    public ValueTask PublishAsync(UsageRecord record)
    {
        if (_channel.Writer.TryWrite(record)) return ValueTask.CompletedTask;
        // A record is money: never cancelled, even when the client is gone.
        return _channel.Writer.WriteAsync(record, CancellationToken.None);
    }

    internal void Complete() => _channel.Writer.TryComplete();
}
