using System.Buffers;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;

namespace Gateway.Core.Providers;

/// <summary>
/// An upstream SSE stream (parsed with System.Net.ServerSentEvents), turned into OpenAI chunks by the
/// protocol's <see cref="OnEvent"/>. Transport failures, our deadline and a stream that stops before
/// the protocol's end marker all surface as <see cref="UpstreamStreamException"/>.
/// </summary>
internal abstract class SseUpstreamStream(string provider, HttpResponseMessage response, CancellationTokenSource deadline,
    CancellationToken clientAborted) : UpstreamStream
{
    protected string Provider => provider;

    /// <summary>Set by <see cref="OnEvent"/> when the protocol's end marker arrived.</summary>
    protected bool Done { get; set; }

    /// <summary>The chunks one upstream event becomes (often none).</summary>
    protected abstract IReadOnlyList<StreamChunk> OnEvent(string eventType, ReadOnlyMemory<byte> data);

    /// <summary>
    /// Whether an event's bytes are its own (the chunks handed on carry them, and a primed stream holds its first ones). When
    /// false, each event is read into one buffer the stream reuses, so no event's bytes may be used after the next is read.
    /// </summary>
    protected virtual bool KeepsEvents => true;

    /// <summary>
    /// Whether, once priming has ended (<see cref="UpstreamStream.PrimingEnded"/>), events may be read into the reused buffer:
    /// true for a protocol whose <see cref="OnEvent"/> keeps no event's bytes past the chunks it returns.
    /// </summary>
    protected virtual bool ReusesEventsAfterPriming => false;

    private bool _reuse; // events are read into _event: always when the stream keeps none, else from the end of priming on
    private byte[]? _event;

    public override void PrimingEnded() => _reuse |= ReusesEventsAfterPriming;

    private ReadOnlyMemory<byte> Reused(ReadOnlySpan<byte> data)
    {
        if (_event is null || _event.Length < data.Length) _event = new byte[Math.Max(data.Length, 2 * (_event?.Length ?? 256))];
        data.CopyTo(_event);
        return _event.AsMemory(0, data.Length);
    }

    /// <summary>The chunks to send when the upstream closed the stream; throw if it closed too early.</summary>
    protected abstract IReadOnlyList<StreamChunk> OnEnd();

    public sealed override async IAsyncEnumerable<StreamChunk> ReadChunksAsync([EnumeratorCancellation] CancellationToken ct)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, deadline.Token);
        IAsyncEnumerator<SseItem<ReadOnlyMemory<byte>>> events;
        try
        {
            var body = await response.Content.ReadAsStreamAsync(linked.Token);
            // The parser makes an event's item as it reaches it, one per MoveNextAsync: a reused buffer is overwritten only when
            // the next event is asked for.
            _reuse |= !KeepsEvents;
            var parser = SseParser.Create(body, (_, data) => _reuse ? Reused(data) : data.ToArray());
            events = parser.EnumerateAsync(linked.Token).GetAsyncEnumerator(linked.Token);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            throw Broken("the stream could not be read");
        }

        await using (events)
        {
            while (!Done)
            {
                bool more;
                try
                {
                    more = await events.MoveNextAsync();
                }
                catch (Exception ex) when (ex is HttpRequestException or IOException)
                {
                    throw Broken("the stream broke before it finished");
                }
                catch (OperationCanceledException) when (!clientAborted.IsCancellationRequested && !ct.IsCancellationRequested)
                {
                    throw new UpstreamStreamException(new UpstreamFailure(UpstreamFailureKind.Timeout, provider, "timed out"));
                }
                // Lists read by index: no enumerator allocated per upstream event.
                var chunks = more ? OnEvent(events.Current.EventType, events.Current.Data) : OnEnd();
                for (var i = 0; i < chunks.Count; i++) yield return chunks[i];
                if (!more) yield break;
            }
        }
    }

    private ArrayBufferWriter<byte>? _relayed;

    /// <summary>
    /// For a request passed through in the upstream's own protocol: the event, as server-sent event text, rides on the first chunk
    /// it was translated to (<see cref="StreamChunk.Native"/>); an event with no chunk of its own waits for the next one; the
    /// stream's last event (once <see cref="Done"/>) waits for the request to be metered (<see cref="UpstreamStream.NativeTail"/>).
    /// </summary>
    protected IReadOnlyList<StreamChunk> Relay(string eventType, ReadOnlyMemory<byte> data, IReadOnlyList<StreamChunk> translated)
    {
        var pending = _relayed ??= new ArrayBufferWriter<byte>(1024);
        pending.Write("event: "u8);
        pending.Write(System.Text.Encoding.UTF8.GetBytes(eventType));
        pending.Write("\ndata: "u8);
        pending.Write(data.Span);
        pending.Write("\n\n"u8);
        if (Done)
        {
            NativeTail = pending.WrittenSpan.ToArray();
            pending.ResetWrittenCount();
            return translated;
        }
        if (translated.Count == 0) return translated;
        var chunks = translated.ToArray();
        chunks[0] = chunks[0] with { Native = pending.WrittenSpan.ToArray() };
        pending.ResetWrittenCount();
        return chunks;
    }

    protected UpstreamStreamException Broken(string detail) =>
        new(new UpstreamFailure(UpstreamFailureKind.Protocol, provider, detail));

    public override async ValueTask DisposeAsync()
    {
        response.Dispose();
        deadline.Dispose();
        await base.DisposeAsync();
    }
}
