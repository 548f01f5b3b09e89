using System.Buffers;
using System.IO.Pipelines;
using System.Text;

namespace Gateway.Api.Endpoints;

/// <summary>
/// How front doors write their answers: the one writer of server-sent events in the gateway: a <c>data:</c> line and the blank line that ends the event, written straight
/// into the response's pipe (the chunks are JSON already; see README "Dependencies" for why not <c>TypedResults.ServerSentEvents</c>).
/// </summary>
internal static class ServerSentEvents
{
    /// <summary>Starts a response as an event stream (call before its first event): no caching, no proxy buffering.</summary>
    public static void Start(HttpResponse response)
    {
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
    }

    /// <summary>A complete JSON answer, with its length.</summary>
    public static Task WriteJsonAsync(HttpResponse response, ReadOnlyMemory<byte> body, CancellationToken ct)
    {
        response.ContentType = "application/json";
        response.ContentLength = body.Length;
        return response.Body.WriteAsync(body, ct).AsTask();
    }

    // What a burst may hold back at most before it is flushed anyway.
    private const int FlushAt = 16 * 1024;

    /// <summary>
    /// Moves a relayed stream on, flushing what was written first when its next item is not ready at once: items that arrived
    /// together (an upstream's burst, or a relay that fell behind under load) leave in one write, and no item waits for one that
    /// has not come. A burst is flushed every <see cref="FlushAt"/> bytes. Nothing is flushed before the door has
    /// <paramref name="started"/> its event stream: until then it may still answer with another status. Called once per event and
    /// most often waiting (an upstream's events come apart), its state machine is pooled rather than allocated per wait.
    /// </summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    public static async ValueTask<bool> NextAsync<T>(IAsyncEnumerator<T> items, PipeWriter output, bool started, CancellationToken ct)
    {
        var next = items.MoveNextAsync();
        var waiting = !next.IsCompleted;
        if (started && (!output.CanGetUnflushedBytes || output.UnflushedBytes >= (waiting ? 1 : FlushAt)))
        {
            try
            {
                await output.FlushAsync(ct);
            }
            catch when (waiting)
            {
                // The client left: the relay sees the same token and ends; the stream is not disposed while it is moving on.
                try { await next; } catch { /* the flush's exception is the one to report */ }
                throw;
            }
        }
        return await next;
    }

    // An event up to this size is written with one reservation of the pipe.
    private const int OneReservationAtMost = 4096;

    /// <summary>
    /// One event of one line (JSON holds no raw newline): its <c>event:</c> line when it has a <paramref name="name"/>, its
    /// <c>data:</c> line and the blank line that ends it. Written with one reservation of the response's pipe when it fits one
    /// buffer, as nearly every event does: each reservation and each advance takes the connection's lock in Kestrel, and a
    /// relayed stream writes an event per token.
    /// </summary>
    public static void Write(IBufferWriter<byte> output, ReadOnlySpan<byte> data, string? name = null)
    {
        var length = (name is null ? 0 : EventPrefix.Length + Encoding.UTF8.GetByteCount(name) + 1) + DataPrefix.Length + data.Length + 2;
        if (length <= OneReservationAtMost && output.GetSpan(length) is var span && span.Length >= length)
        {
            var at = 0;
            if (name is not null)
            {
                EventPrefix.CopyTo(span);
                at = EventPrefix.Length + Encoding.UTF8.GetBytes(name, span[EventPrefix.Length..]);
                span[at++] = (byte)'\n';
            }
            DataPrefix.CopyTo(span[at..]);
            at += DataPrefix.Length;
            data.CopyTo(span[at..]);
            at += data.Length;
            span[at++] = (byte)'\n';
            span[at++] = (byte)'\n';
            output.Advance(at);
            return;
        }
        if (name is not null)
        {
            output.Write(EventPrefix);
            output.Write(Encoding.UTF8.GetBytes(name));
            output.Write("\n"u8);
        }
        output.Write(DataPrefix);
        output.Write(data);
        output.Write("\n\n"u8);
    }

    private static ReadOnlySpan<byte> EventPrefix => "event: "u8;
    private static ReadOnlySpan<byte> DataPrefix => "data: "u8;

    /// <summary>
    /// An upstream's own events as a provider adapter keeps them (<c>event:</c> and <c>data:</c> lines, a blank line after each;
    /// see <see cref="Gateway.Core.Providers.StreamChunk.Native"/>): each event's name and data.
    /// </summary>
    public static IEnumerable<(string Name, ReadOnlyMemory<byte> Data)> Split(ReadOnlyMemory<byte> events)
    {
        while (!events.IsEmpty)
        {
            var end = events.Span.IndexOf("\n\n"u8);
            var block = end < 0 ? events : events[..end];
            events = end < 0 ? ReadOnlyMemory<byte>.Empty : events[(end + 2)..];
            var name = "";
            var data = ReadOnlyMemory<byte>.Empty;
            if (block.Span.StartsWith(EventPrefix))
            {
                var line = block.Span.IndexOf((byte)'\n');
                name = Encoding.UTF8.GetString(block.Span[EventPrefix.Length..(line < 0 ? block.Length : line)]);
                block = line < 0 ? ReadOnlyMemory<byte>.Empty : block[(line + 1)..];
            }
            if (block.Span.StartsWith(DataPrefix)) data = block[DataPrefix.Length..];
            if (name.Length > 0 || !data.IsEmpty) yield return (name, data);
        }
    }
}
