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
public sealed class ChatGateway(ModelCatalog catalog, IEnumerable<IChatProvider> providers, TokenCounter tokens,
    UsageChannel usage, TimeProvider time)
{
    private readonly FrozenDictionary<string, IChatProvider> _providers = providers.ToFrozenDictionary(p => p.Protocol, StringComparer.Ordinal);

    /// <summary>Starts the usage record of an authenticated request; publish it exactly once.</summary>
    public RequestMeter StartMeter(GatewayKey key) => new(key, tokens, usage, time);

    /// <summary>The model an alias names, if it exists and the key may use it.</summary>
    public (ModelRoute? Route, GatewayError? Failure) Resolve(GatewayKey key, ChatCompletionRequest request)
    {
        var alias = request.Model!;
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
