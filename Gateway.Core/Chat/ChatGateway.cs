using System.Collections.Frozen;
using Gateway.Core.Catalog;
using Gateway.Core.Errors;
using Gateway.Core.Failover;
using Gateway.Core.Keys;
using Gateway.Core.Metering;
using Gateway.Core.Providers;
using Gateway.Core.Routing;
using Gateway.Core.Tokens;
using System.Text.Json;
using Gateway.Core.Wire;
using Microsoft.Extensions.Options;

namespace Gateway.Core.Chat;

/// <summary>The proxy's core: resolves a request to a model and provider, calls it, and meters it.</summary>
public sealed class ChatGateway(ModelCatalog catalog, RuleBook rules, IEnumerable<IChatProvider> providers, IEnumerable<IEmbeddingProvider> embedders,
    TokenCounter tokens, UsageChannel usage, TimeProvider time, FailoverExecutor failover, IOptions<FailoverOptions> failoverOptions,
    Budgets.BudgetLedger ledger)
{
    /// <summary>Output limit assumed for a worst case when neither the request nor the model sets one.</summary>
    public const int DefaultWorstCaseOutputTokens = 4096;

    /// <summary>What a key's budget decided for a request.</summary>
    public sealed record BudgetDecision(RouteDecision Decision, Budgets.Reservation? Reservation, string? DowngradedFrom, decimal? Remaining,
        GatewayError? Refused);

    /// <summary>
    /// Applies the key's budget before the request is sent: its worst-case cost (estimated prompt plus the
    /// output limit, at the dearest candidate's prices) is reserved against the hard cap. At or over the
    /// daily budget, or when the cap has no room for it, the request goes to the key's downgrade model if
    /// that fits; otherwise it is refused with 429 insufficient_quota.
    /// </summary>
    public async Task<BudgetDecision> BudgetAsync(GatewayKey key, ChatCompletionRequest request, RouteDecision decision, CancellationToken ct)
    {
        if (!key.HasBudget) return new BudgetDecision(decision, null, null, null, null);
        var prompt = tokens.CountPrompt(request.Messages!);
        var check = await ledger.ReserveAsync(key, WorstCase(decision.Chain, request, prompt), ct);
        var overDaily = key.DailyBudgetUsd is { } daily && check.SpentToday >= daily;
        if (check.Reservation is not null && !overDaily) return new BudgetDecision(decision, check.Reservation, null, Remaining(key, check.SpentToday), null);

        if (key.DowngradeModel is { } alias && alias != request.Model && catalog.Find(alias) is { } cheaper)
        {
            var chain = catalog.Chain(cheaper);
            var down = await ledger.ReserveAsync(key, WorstCase(chain, request, prompt), ct);
            if (down.Reservation is not null)
            {
                check.Reservation?.Settle(0); // the asked model's reservation is not used
                return new BudgetDecision(new RouteDecision(chain, decision.Rule), down.Reservation, request.Model, Remaining(key, down.SpentToday), null);
            }
        }
        // Over the daily budget with no downgrade possible, but under the hard cap: served as asked.
        return check.Reservation is not null
            ? new BudgetDecision(decision, check.Reservation, null, Remaining(key, check.SpentToday), null)
            : new BudgetDecision(decision, null, null, Remaining(key, check.SpentToday), GatewayError.InsufficientQuota);
    }

    private static decimal? Remaining(GatewayKey key, decimal spent) => key.DailyBudgetUsd is { } daily ? Math.Max(0, daily - spent) : null;

    private static decimal WorstCase(IReadOnlyList<ModelRoute> chain, ChatCompletionRequest request, int promptTokens) =>
        chain.Max(route => Metering.Pricing.Cost(route, new TokenUsage(promptTokens,
            request.MaxCompletionTokens ?? request.MaxTokens ?? route.MaxOutputTokens ?? DefaultWorstCaseOutputTokens, 0)));

    private readonly FrozenDictionary<string, IChatProvider> _providers = providers.ToFrozenDictionary(p => p.Protocol, StringComparer.Ordinal);
    private readonly FrozenDictionary<string, IEmbeddingProvider> _embedders = embedders.ToFrozenDictionary(p => p.Protocol, StringComparer.Ordinal);

    /// <summary>Starts the usage record of an authenticated request; publish it exactly once.</summary>
    public RequestMeter StartMeter(GatewayKey key) => new(key, tokens, usage, time);

    /// <summary>The model an alias names, if it exists and the key may use it.</summary>
    /// <summary>
    /// Where a chat request goes: the first routing rule that matches, else the asked alias with its own
    /// fallbacks. The key must be allowed the alias it asked for (403); an alias no rule routes and no
    /// model has is a 404.
    /// </summary>
    public (RouteDecision? Decision, GatewayError? Failure) Route(GatewayKey key, ChatCompletionRequest request, Func<string, string?> header)
    {
        var alias = request.Model!;
        if (!key.MayUse(alias)) return (null, GatewayError.ModelNotAllowed(alias));
        if (rules.Route(key, request, header) is { } decision && _providers.ContainsKey(decision.First.Provider.Protocol))
            return (decision, null);
        var (route, failure) = Resolve(key, alias);
        return route is null ? (null, failure) : (new RouteDecision([.. catalog.Chain(route).Where(c => key.MayUse(c.Alias))], null), null);
    }

    /// <summary>The model an alias names for embeddings: it must exist, be allowed, and its protocol must embed.</summary>
    public (ModelRoute? Route, GatewayError? Failure) ResolveEmbedding(GatewayKey key, EmbeddingRequest request)
    {
        var (route, failure) = Resolve(key, request.Model!);
        if (route is not null && !_embedders.ContainsKey(route.Provider.Protocol))
            return (null, GatewayError.BadRequest($"The model '{request.Model}' does not support embeddings.", "model", "unsupported_model"));
        return (route, failure);
    }

    /// <summary>Embeddings over the model's candidate chain (fallbacks whose protocol cannot embed are passed over).</summary>
    public Task<FailoverResult<UpstreamCompletion>> EmbedAsync(Guid requestId, EmbeddingRequest request, ModelRoute first, CancellationToken ct) =>
        failover.RunAsync(catalog.Chain(first), (route, token) => _embedders.TryGetValue(route.Provider.Protocol, out var embedder)
            ? embedder.EmbedAsync(new EmbeddingCall(requestId, request, route), token)
            : Task.FromResult<UpstreamResult<UpstreamCompletion>>(new UpstreamFailure(UpstreamFailureKind.Misconfigured, route.Provider.Name, "it cannot embed")), ct);

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

    /// <summary>A non-streaming completion over the model's candidate chain.</summary>
    public Task<FailoverResult<UpstreamCompletion>> CompleteAsync(Guid requestId, ChatCompletionRequest request, IReadOnlyList<ModelRoute> chain, CancellationToken ct) =>
        failover.RunAsync(chain, (route, token) => Provider(route).CompleteAsync(new UpstreamCall(requestId, request, route), token), ct);

    /// <summary>
    /// A stream over the model's candidate chain, each candidate held back until its first token
    /// (within the model's <c>ttft_timeout_ms</c>, else Gateway:Failover:DefaultTtftTimeoutMs).
    /// </summary>
    public Task<FailoverResult<PrimedStream>> OpenStreamAsync(Guid requestId, ChatCompletionRequest request, IReadOnlyList<ModelRoute> chain, CancellationToken ct) =>
        failover.RunAsync(chain, (route, token) => PrimedStream.OpenAsync(
            open => Provider(route).OpenStreamAsync(new UpstreamCall(requestId, request, route), open), route.Provider.Name,
            TimeSpan.FromMilliseconds(route.TtftTimeoutMs ?? failoverOptions.Value.DefaultTtftTimeoutMs), token), ct);

    private IChatProvider Provider(ModelRoute route) => _providers[route.Provider.Protocol];

    /// <summary>What a continuation asks of the next candidate after a stream broke mid-answer.</summary>
    public const string ContinuePrompt = "Continue exactly where your previous message stopped. Do not repeat any of it and do not comment on the interruption.";

    /// <summary>
    /// The request that continues a broken stream elsewhere: the conversation, the partial answer as an
    /// assistant message, and an instruction to go on from its last token.
    /// </summary>
    public ChatCompletionRequest Continuation(ChatCompletionRequest original, string partialAnswer)
    {
        var copy = JsonSerializer.Deserialize(JsonSerializer.SerializeToUtf8Bytes(original, GatewayJsonContext.Wire.ChatCompletionRequest),
            GatewayJsonContext.Wire.ChatCompletionRequest)!;
        // The client's output limit covers the whole answer, the part already sent included.
        var sent = tokens.Count(partialAnswer);
        if (copy.MaxCompletionTokens is { } maxCompletion) copy.MaxCompletionTokens = Math.Max(1, maxCompletion - sent);
        if (copy.MaxTokens is { } max) copy.MaxTokens = Math.Max(1, max - sent);
        copy.Messages!.Add(new ChatMessage { Role = "assistant", Content = JsonSerializer.SerializeToElement(partialAnswer, GatewayJsonContext.Wire.String) });
        copy.Messages.Add(new ChatMessage { Role = "user", Content = JsonSerializer.SerializeToElement(ContinuePrompt, GatewayJsonContext.Wire.String) });
        return copy;
    }
}
