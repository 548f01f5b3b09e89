using Gateway.Core.Errors;

namespace Gateway.Core.Pipeline;

/// <summary>
/// One event of a streamed answer: a canonical chunk (OpenAI's <c>chat.completion.chunk</c> JSON) or, as the last event, the
/// error the stream ends with. An error before any chunk means nothing reached the client: its front door may still answer it
/// with a status code.
/// </summary>
public readonly record struct StreamEvent(ReadOnlyMemory<byte> Chunk, GatewayError? Error)
{
    internal static StreamEvent Of(ReadOnlyMemory<byte> chunk) => new(chunk, null);

    internal static StreamEvent Failed(GatewayError error) => new(default, error);
}
