using Gateway.Core.Errors;

namespace Gateway.Core.Pipeline;

/// <summary>
/// One event of a streamed answer: a canonical chunk (OpenAI's <c>chat.completion.chunk</c> JSON) or, as the last event, the
/// error the stream ends with. An error before any chunk means nothing reached the client: its front door may still answer it
/// with a status code.
/// </summary>
/// <param name="Chunk">The canonical chunk (empty for an error).</param>
/// <param name="Error">The error the stream ends with, on its last event.</param>
/// <param name="Native">A passed-through request's upstream events this chunk completes, as server-sent event text, while the answer
/// comes from the candidate that opened the stream (see <see cref="Providers.StreamChunk.Native"/>); else empty.</param>
public readonly record struct StreamEvent(ReadOnlyMemory<byte> Chunk, GatewayError? Error, ReadOnlyMemory<byte> Native = default)
{
    internal static StreamEvent Of(ReadOnlyMemory<byte> chunk, ReadOnlyMemory<byte> native = default) => new(chunk, null, native);

    internal static StreamEvent Failed(GatewayError error) => new(default, error);
}
