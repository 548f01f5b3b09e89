using Gateway.Core.Errors;

namespace Gateway.Core.Pipeline;

/// <summary>
/// How a request ended, for its front door to write in its wire format: an error, a complete answer (OpenAI's <c>chat.completion</c>
/// or embeddings JSON), or a stream of <see cref="StreamEvent"/>s; with the <see cref="PipelineFacts"/> for its headers. By the time
/// a result is returned its usage record is journalled and its budget settled, except a stream's, which are as its last event is read.
/// </summary>
public sealed class PipelineResult
{
    private PipelineResult(PipelineFacts facts, GatewayError? error, ReadOnlyMemory<byte> body, IAsyncEnumerable<StreamEvent>? stream,
        ReadOnlyMemory<byte> native = default) =>
        (Facts, Error, Body, Stream, Native) = (facts, error, body, stream, native);

    /// <summary>What the caller should be told of how the request went.</summary>
    public PipelineFacts Facts { get; }

    /// <summary>The request failed before any answer: this error, in the front door's shape and with its status.</summary>
    public GatewayError? Error { get; }

    /// <summary>A complete answer's JSON (when neither <see cref="Error"/> nor <see cref="Stream"/> is set).</summary>
    public ReadOnlyMemory<byte> Body { get; }

    /// <summary>A passed-through request's complete answer as the upstream wrote it (see <see cref="Wire.NativeRequest"/>); else empty.</summary>
    public ReadOnlyMemory<byte> Native { get; }

    /// <summary>A streamed answer's events, read once; the client's abort cancels it through the request's token.</summary>
    public IAsyncEnumerable<StreamEvent>? Stream { get; }

    internal static PipelineResult Failed(PipelineFacts facts, GatewayError error) => new(facts, error, default, null);

    internal static PipelineResult Answered(PipelineFacts facts, ReadOnlyMemory<byte> body, ReadOnlyMemory<byte> native = default) =>
        new(facts, null, body, null, native);

    internal static PipelineResult Streamed(PipelineFacts facts, IAsyncEnumerable<StreamEvent> stream) => new(facts, null, default, stream);
}
