using System.Runtime.CompilerServices;
using Gateway.Core.Providers;
using Gateway.Core.Telemetry;

namespace Gateway.Core.Failover;

/// <summary>
/// A stream held back until its first real token (text or a tool call): whatever came before it
/// (role chunks) is buffered, so a slow first token, an error event or a dropped connection before it
/// can still fail over while the client has received nothing.
/// </summary>
public sealed class PrimedStream : IAsyncDisposable
{
    private readonly IAsyncEnumerator<StreamChunk> _rest;
    private readonly CancellationTokenSource _firstToken;
    private readonly List<StreamChunk> _buffered;
    private readonly bool _ended;
    private UpstreamAttempt? _attempt;
    private bool _completed;

    private PrimedStream(UpstreamStream inner, IAsyncEnumerator<StreamChunk> rest, CancellationTokenSource firstToken, List<StreamChunk> buffered, bool ended)
    {
        Inner = inner;
        _rest = rest;
        _firstToken = firstToken;
        _buffered = buffered;
        _ended = ended;
    }

    public UpstreamStream Inner { get; }

    /// <summary>Opens a stream and reads until its first real token, within <paramref name="timeToFirstToken"/>.</summary>
    public static async Task<UpstreamResult<PrimedStream>> OpenAsync(Func<CancellationToken, Task<UpstreamResult<UpstreamStream>>> open,
        string provider, TimeSpan timeToFirstToken, CancellationToken ct)
    {
        var firstToken = CancellationTokenSource.CreateLinkedTokenSource(ct);
        firstToken.CancelAfter(timeToFirstToken);
        UpstreamStream? stream = null;
        IAsyncEnumerator<StreamChunk>? chunks = null;
        try
        {
            var opened = await open(firstToken.Token);
            if (opened.Failure is { } failure)
            {
                firstToken.Dispose();
                return failure;
            }
            stream = opened.Value!;
            chunks = stream.ReadChunksAsync(firstToken.Token).GetAsyncEnumerator(firstToken.Token);
            var buffered = new List<StreamChunk>();
            var ended = false;
            while (true)
            {
                if (!await chunks.MoveNextAsync())
                {
                    ended = true;
                    break;
                }
                buffered.Add(chunks.Current);
                if (chunks.Current.HasContent) break;
            }
            firstToken.CancelAfter(Timeout.InfiniteTimeSpan); // from here on only the call's own deadline applies
            if (firstToken.IsCancellationRequested && !ct.IsCancellationRequested)
                throw new OperationCanceledException(firstToken.Token); // the deadline fired just as the token came: treat as missed
            return new PrimedStream(stream, chunks, firstToken, buffered, ended);
        }
        catch (Exception ex) when (ex is UpstreamStreamException || ex is OperationCanceledException && !ct.IsCancellationRequested)
        {
            if (chunks is not null) await chunks.DisposeAsync();
            if (stream is not null) await stream.DisposeAsync();
            firstToken.Dispose();
            return ex is UpstreamStreamException broken
                ? broken.Failure
                : new UpstreamFailure(UpstreamFailureKind.Timeout, provider, $"no first token within {timeToFirstToken.TotalMilliseconds:0} ms");
        }
        catch
        {
            if (chunks is not null) await chunks.DisposeAsync();
            if (stream is not null) await stream.DisposeAsync();
            firstToken.Dispose();
            throw;
        }
    }

    /// <summary>Takes over the provider call's telemetry, which ends with the stream (in <see cref="DisposeAsync"/>).</summary>
    internal void Adopt(UpstreamAttempt attempt) => _attempt = attempt;

    /// <summary>The held-back chunks, then the rest of the stream.</summary>
    public async IAsyncEnumerable<StreamChunk> ReadChunksAsync([EnumeratorCancellation] CancellationToken ct = default)
    {
        foreach (var chunk in _buffered) yield return chunk;
        Inner.PrimingEnded(); // every held chunk was consumed: the rest come one at a time
        _completed = _ended;
        if (_ended) yield break;
        while (true)
        {
            bool more;
            try
            {
                more = await _rest.MoveNextAsync();
            }
            catch (Exception ex)
            {
                _attempt?.Failed(ex is UpstreamStreamException broken ? broken.Failure.Outcome : ex.GetType().FullName ?? "_OTHER",
                    (ex as UpstreamStreamException)?.Failure.Usage);
                throw;
            }
            if (!more) break;
            ct.ThrowIfCancellationRequested();
            yield return _rest.Current;
        }
        _completed = true;
    }

    public async ValueTask DisposeAsync()
    {
        await _rest.DisposeAsync();
        await Inner.DisposeAsync();
        _firstToken.Dispose();
        if (_attempt is { } attempt)
        {
            // Disposed before its end with nothing broken upstream: the relay stopped reading, because the client left.
            if (!_completed) attempt.Failed("client_disconnected");
            attempt.Answered(Inner.Usage, Inner.ServedModel);
            attempt.End();
        }
    }
}
