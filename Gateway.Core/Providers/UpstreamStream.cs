using System.Text;

namespace Gateway.Core.Providers;

/// <summary>One OpenAI chat.completion.chunk, serialized, as it goes to the client.</summary>
public readonly record struct StreamChunk(ReadOnlyMemory<byte> Json, bool IsUsageOnly, bool HasContent, bool HasToolCall = false)
{
    /// <summary>
    /// For a request passed through in its own protocol (<see cref="Wire.NativeRequest"/>): the upstream's events, as server-sent event text,
    /// that this chunk completes (events with no chunk of their own, such as pings, ride on the next chunk); else empty.
    /// </summary>
    public ReadOnlyMemory<byte> Native { get; init; }
}

/// <summary>
/// An open upstream stream, normalized to OpenAI chunks. It tracks what the client received,
/// so a stream cut short can still be metered (estimated from <see cref="Text"/>).
/// </summary>
public abstract class UpstreamStream : IAsyncDisposable
{
    /// <summary>The model the provider says it served, once known.</summary>
    public string? ServedModel { get; protected set; }

    /// <summary>Usage as reported by the provider (null until its usage arrives).</summary>
    public TokenUsage? Usage { get; protected set; }

    /// <summary>The text content the stream carried so far.</summary>
    public StringBuilder Text { get; } = new(Chat.CompletionAssembler.TextCapacity);

    /// <summary>
    /// Whether the stream adds its chunks to the call's <see cref="UpstreamCall.Assembler"/> itself as it reads them (so they are read
    /// once, and the chunks it hands on carry no bytes); when false, whoever assembles adds each chunk it is handed.
    /// </summary>
    public virtual bool Assembles => false;

    /// <summary>Yields chunks until the provider's end of stream; throws <see cref="UpstreamStreamException"/> on failure.</summary>
    public abstract IAsyncEnumerable<StreamChunk> ReadChunksAsync(CancellationToken ct);

    /// <summary>
    /// A passed-through stream's own ending, as server-sent event text, held back from the chunks so that it reaches the client
    /// only once the request is metered (see <see cref="StreamChunk.Native"/>); else empty.
    /// </summary>
    public ReadOnlyMemory<byte> NativeTail { get; protected set; }

    /// <summary>
    /// Told by <see cref="Failover.PrimedStream"/> once every chunk it held back has been handed on: from here on each chunk is
    /// consumed (written to the client, or read) before the next is asked for, so a stream may read its events into one buffer
    /// it reuses instead of an array each.
    /// </summary>
    public virtual void PrimingEnded()
    {
    }

    public virtual ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Opens a stream under a whole-call deadline (<paramref name="timeout"/>, linked to the client's token): the deadline
    /// passes to the stream <paramref name="open"/> makes, which disposes it, or is disposed here when none opens (the
    /// provider refused, the client went away or the deadline fired before the answer's headers).
    /// </summary>
    public static async Task<UpstreamResult<UpstreamStream>> OpenAsync<TSent>(TimeSpan timeout,
        Func<CancellationToken, Task<UpstreamResult<TSent>>> send, Func<TSent, CancellationTokenSource, UpstreamStream> open, CancellationToken ct)
        where TSent : class
    {
        var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        UpstreamResult<TSent> sent;
        try
        {
            sent = await send(deadline.Token);
        }
        catch
        {
            deadline.Dispose();
            throw;
        }
        if (sent.Failure is { } failure)
        {
            deadline.Dispose();
            return failure;
        }
        return open(sent.Value!, deadline);
    }
}
