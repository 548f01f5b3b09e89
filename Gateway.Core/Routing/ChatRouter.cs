using System.Collections.Frozen;
using Gateway.Core.Catalog;
using Gateway.Core.Errors;
using Gateway.Core.Keys;
using Gateway.Core.Providers;
using Gateway.Core.Wire;

namespace Gateway.Core.Routing;

/// <summary>
/// Step 4 of the pipeline (<see cref="Pipeline.ChatPipeline"/>): where a request goes. Chat requests follow the routing rules, else
/// the asked alias with its fallbacks; embeddings the alias alone. Also the model list a key sees. Reads in-memory snapshots only.
/// </summary>
public sealed class ChatRouter(ModelCatalog catalog, RuleBook rules, IEnumerable<IChatProvider> providers, IEnumerable<IEmbeddingProvider> embedders)
{
    private readonly FrozenSet<string> _protocols = providers.Select(p => p.Protocol).ToFrozenSet(StringComparer.Ordinal);
    private readonly FrozenSet<string> _embeds = embedders.Select(p => p.Protocol).ToFrozenSet(StringComparer.Ordinal);

    /// <summary>
    /// Where a chat request goes: the first routing rule that matches, else the asked alias with its own
    /// fallbacks. The key must be allowed the alias it asked for (403); an alias no rule routes and no
    /// model has is a 404.
    /// </summary>
    public (RouteDecision? Decision, GatewayError? Failure) Route(GatewayKey key, ChatCompletionRequest request, Func<string, string?> header)
    {
        var alias = request.Model!;
        if (!key.MayUse(alias)) return (null, GatewayError.ModelNotAllowed(alias));
        if (rules.Route(key, request, header) is { } decision && _protocols.Contains(decision.First.Provider.Protocol))
            return (decision, null);
        var (route, failure) = Resolve(key, alias);
        return route is null ? (null, failure) : (new RouteDecision([.. catalog.Chain(route).Where(c => key.MayUse(c.Alias))], null), null);
    }

    /// <summary>The model an alias names for embeddings: it must exist, be allowed, and its protocol must embed.</summary>
    public (ModelRoute? Route, GatewayError? Failure) ResolveEmbedding(GatewayKey key, EmbeddingRequest request)
    {
        var (route, failure) = Resolve(key, request.Model!);
        if (route is not null && !_embeds.Contains(route.Provider.Protocol))
            return (null, GatewayError.BadRequest($"The model '{request.Model}' does not support embeddings.", "model", "unsupported_model"));
        return (route, failure);
    }

    /// <summary>The models a key may use, for <c>GET /v1/models</c>.</summary>
    public ModelList ListModels(GatewayKey key) => new("list",
        [.. catalog.Models.Where(m => key.MayUse(m.Alias) && _protocols.Contains(m.Provider.Protocol))
            .OrderBy(m => m.Alias, StringComparer.Ordinal)
            .Select(m => new ModelEntry(m.Alias, "model", m.CreatedAt.ToUnixTimeSeconds(), m.Provider.Name))]);

    private (ModelRoute? Route, GatewayError? Failure) Resolve(GatewayKey key, string alias)
    {
        var route = catalog.Find(alias);
        if (route is null || !_protocols.Contains(route.Provider.Protocol)) return (null, GatewayError.ModelNotFound(alias));
        if (!key.MayUse(alias)) return (null, GatewayError.ModelNotAllowed(alias));
        return (route, null);
    }
}
