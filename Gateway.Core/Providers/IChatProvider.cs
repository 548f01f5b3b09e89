namespace Gateway.Core.Providers;

/// <summary>One adapter per wire protocol. Thread-safe; one instance serves all requests.</summary>
public interface IChatProvider
{
    /// <summary>"openai", "anthropic", "gemini" or "mock": the provider row's protocol.</summary>
    string Protocol { get; }

    /// <summary>A non-streaming call; the answer is an OpenAI chat.completion JSON body.</summary>
    Task<UpstreamResult<UpstreamCompletion>> CompleteAsync(UpstreamCall call, CancellationToken ct);

    /// <summary>Completes once upstream status and headers are in; nothing has reached the client.</summary>
    Task<UpstreamResult<UpstreamStream>> OpenStreamAsync(UpstreamCall call, CancellationToken ct);

    /// <summary>
    /// One cheap authenticated call, the protocol's list-models endpoint, with the same base URL and credentials as
    /// chat calls: proves both work ("test connection"). A refusal carries the provider's status and its own message.
    /// </summary>
    Task<UpstreamResult<ModelListing>> ListModelsAsync(Catalog.ProviderInfo provider, TimeSpan timeout, CancellationToken ct);
}
