using Gateway.Core.Catalog;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers;

/// <summary>A protocol adapter that also serves <c>/v1/embeddings</c>.</summary>
public interface IEmbeddingProvider
{
    string Protocol { get; }

    /// <summary>The answer is an OpenAI embeddings list (JSON) and its usage.</summary>
    Task<UpstreamResult<UpstreamCompletion>> EmbedAsync(EmbeddingCall call, CancellationToken ct);
}

public sealed record EmbeddingCall(Guid RequestId, EmbeddingRequest Request, ModelRoute Route);
