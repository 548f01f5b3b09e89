using System.Collections.Frozen;
using Gateway.Core.Catalog;
using Gateway.Core.Errors;
using Gateway.Core.Keys;
using Gateway.Core.Metering;
using Gateway.Core.Providers;
using Gateway.Core.Tokens;
using Gateway.Core.Wire;

namespace Gateway.Core.Chat;

/// <summary>The proxy's core: resolves a request to a model and provider, calls it, and meters it.</summary>
public sealed class ChatGateway(ModelCatalog catalog, IEnumerable<IChatProvider> providers, IEnumerable<IEmbeddingProvider> embedders,
    TokenCounter tokens, UsageChannel usage, TimeProvider time)
{
    private readonly FrozenDictionary<string, IChatProvider> _providers = providers.ToFrozenDictionary(p => p.Protocol, StringComparer.Ordinal);
    private readonly FrozenDictionary<string, IEmbeddingProvider> _embedders = embedders.ToFrozenDictionary(p => p.Protocol, StringComparer.Ordinal);

    /// <summary>Starts the usage record of an authenticated request; publish it exactly once.</summary>
    public RequestMeter StartMeter(GatewayKey key) => new(key, tokens, usage, time);

    /// <summary>The model an alias names, if it exists and the key may use it.</summary>
    public (ModelRoute? Route, GatewayError? Failure) Resolve(GatewayKey key, ChatCompletionRequest request) => Resolve(key, request.Model!);

    /// <summary>The model an alias names for embeddings: it must exist, be allowed, and its protocol must embed.</summary>
    public (ModelRoute? Route, GatewayError? Failure) ResolveEmbedding(GatewayKey key, EmbeddingRequest request)
    {
        var (route, failure) = Resolve(key, request.Model!);
        if (route is not null && !_embedders.ContainsKey(route.Provider.Protocol))
            return (null, GatewayError.BadRequest($"The model '{request.Model}' does not support embeddings.", "model", "unsupported_model"));
        return (route, failure);
    }

    public Task<UpstreamResult<UpstreamCompletion>> EmbedAsync(EmbeddingCall call, CancellationToken ct) =>
        _embedders[call.Route.Provider.Protocol].EmbedAsync(call, ct);

    private (ModelRoute? Route, GatewayError? Failure) Resolve(GatewayKey key, string alias)
    {
        var route = catalog.Find(alias);
        if (route is null || !_providers.ContainsKey(route.Provider.Protocol)) return (null, GatewayError.ModelNotFound(alias));
        if (!key.MayUse(alias)) return (null, GatewayError.ModelNotAllowed(alias));
        return (route, null);
    }

    /// <summary>The models a key may use, for <c>GET /v1/models</c>.</summary>
    public ModelList ListModels(GatewayKey key) => new("list",
        [.. catalog.Models.Where(m => key.MayUse(m.Alias) && _providers.ContainsKey(m.Provider.Protocol))
            .OrderBy(m => m.Alias, StringComparer.Ordinal)
            .Select(m => new ModelEntry(m.Alias, "model", m.CreatedAt.ToUnixTimeSeconds(), m.Provider.Name))]);

    public Task<UpstreamResult<UpstreamCompletion>> CompleteAsync(UpstreamCall call, CancellationToken ct) =>
        _providers[call.Route.Provider.Protocol].CompleteAsync(call, ct);

    public Task<UpstreamResult<UpstreamStream>> OpenStreamAsync(UpstreamCall call, CancellationToken ct) =>
        _providers[call.Route.Provider.Protocol].OpenStreamAsync(call, ct);
}
