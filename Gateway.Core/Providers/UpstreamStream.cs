using System.Text;

namespace Gateway.Core.Providers;

/// <summary>One OpenAI chat.completion.chunk, serialized, as it goes to the client.</summary>
public readonly record struct StreamChunk(ReadOnlyMemory<byte> Json, bool IsUsageOnly, bool HasContent, bool HasToolCall = false);

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
    public StringBuilder Text { get; } = new();

    /// <summary>Yields chunks until the provider's end of stream; throws <see cref="UpstreamStreamException"/> on failure.</summary>
    public abstract IAsyncEnumerable<StreamChunk> ReadChunksAsync(CancellationToken ct);

    public virtual ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return ValueTask.CompletedTask;
    }
}
