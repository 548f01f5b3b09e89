using Gateway.Core.Catalog;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers;

/// <summary>What an adapter needs for one attempt: the client's request and the chosen model.</summary>
public sealed record UpstreamCall(Guid RequestId, ChatCompletionRequest Request, ModelRoute Route)
{
    /// <summary>
    /// For a non-streaming request called streaming: the assembler its answer is joined in. A stream that reads its chunks as
    /// OpenAI JSON anyway may add them as it reads (<see cref="UpstreamStream.Assembles"/>).
    /// </summary>
    public Chat.CompletionAssembler? Assembler { get; init; }
}
