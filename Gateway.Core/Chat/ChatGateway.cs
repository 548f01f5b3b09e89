using System.Collections.Frozen;
using Gateway.Core.Catalog;
using Gateway.Core.Errors;
using Gateway.Core.Failover;
using Gateway.Core.Keys;
using Gateway.Core.Metering;
using Gateway.Core.Providers;
using Gateway.Core.Routing;
using Gateway.Core.Telemetry;
using Gateway.Core.Tokens;
using System.Text.Json;
using Gateway.Core.Wire;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Gateway.Core.Chat;

/// <summary>The proxy's core: resolves a request to a model and provider, calls it, and meters it.</summary>
public sealed partial class ChatGateway(ModelCatalog catalog, RuleBook rules, IEnumerable<IChatProvider> providers, IEnumerable<IEmbeddingProvider> embedders,
    TokenCounter tokens, UsageChannel usage, TimeProvider time, FailoverExecutor failover, IOptions<FailoverOptions> failoverOptions,
    Budgets.BudgetLedger ledger, Budgets.TagBudgets tagBudgets, Budgets.BudgetCalendar calendar, IOptions<GatewayOptions> options,
    Guards.InjectionFilter injection, GatewayMetrics metrics, ILogger<ChatGateway> log)
{
    /// <summary>Output limit assumed for a worst case when neither the request nor the model sets one.</summary>
    public const int DefaultWorstCaseOutputTokens = 4096;

    /// <summary>What a key's budget decided for a request.</summary>
    public sealed record BudgetDecision(RouteDecision Decision, Budgets.Reservation? Reservation, string? DowngradedFrom, decimal? Remaining,
        GatewayError? Refused);

    /// <summary>
    /// Applies the key's budget before the request is sent: its worst-case cost (estimated prompt plus the
    /// output limit, times <c>n</c>, at the dearest candidate's prices, the prompt at the dearest price a prompt token can be
    /// billed at there: a cache write costs more than plain input) is reserved against the hard cap.
    /// At or over the daily budget, or when the cap has no room for it, the request goes to the key's
    /// downgrade model if that fits; otherwise it is refused with 429 insufficient_quota. For a key with a
    /// cap, a request without an output limit is sent with the one its worst case assumed, so the bound holds.
    /// </summary>
    public async Task<BudgetDecision> BudgetAsync(GatewayKey key, DateOnly day, ChatCompletionRequest request, RouteDecision decision,
        CancellationToken ct)
    {
        if (!key.HasBudget && !tagBudgets.Covers(key.Tags))
            return new BudgetDecision(decision, null, null, null, null);
        var prompt = PromptBound(request);
        var check = await ledger.ReserveAsync(key, day, WorstCase(decision.Chain, request, prompt), ct);
        var capped = key.HardCapUsd is not null;
        // Soft budgets (spend re-read every 2 s): the key's month, and each end user's day.
        var overMonth = key.MonthlyBudgetUsd is { } monthly && await ledger.MonthSpentAsync(key.Id, day) >= monthly;
        var overUser = key.EndUserDailyBudgetUsd is { } perUser && request.User is { Length: > 0 } user
            && await ledger.EndUserSpentAsync(key.Id, user, day) >= perUser;
        var spentTag = tagBudgets.Covers(key.Tags) ? await tagBudgets.SpentTagAsync(key.Tags, day) : null;
        // Where an over-budget request goes: the key's tiers and downgrade model, else the rule's target, else the default.
        var tiers = key.TiersWith(decision.DowngradeModel ?? options.Value.DefaultDowngradeModel);
        if ((overMonth || overUser || spentTag is not null) && tiers.Count == 0)
        {
            check.Reservation?.Settle(0);
            var error = overMonth ? GatewayError.MonthlyQuota : overUser ? GatewayError.EndUserQuota : GatewayError.TagQuota(spentTag!);
            return new BudgetDecision(decision, null, null, Remaining(key, check.SpentToday), error);
        }
        overMonth |= overUser || spentTag is not null;
        // The highest downgrade tier reached by the day's spend; with no room under the cap, or the month's
        // budget spent, the last tier.
        var tier = overMonth || check.Reservation is null && capped
            ? (tiers.Count > 0 ? tiers[^1].Model : null)
            : key.TierModel(check.SpentToday, tiers);
        if ((check.Reservation is not null || !capped) && tier is null)
            return Decided(decision, check.Reservation, null, check.SpentToday);

        if (tier is { } alias && alias != request.Model && catalog.Find(alias) is { } cheaper)
        {
            check.Reservation?.Settle(0); // the asked model's reservation makes room for the cheaper one
            var chain = catalog.Chain(cheaper);
            var down = await ledger.ReserveAsync(key, day, WorstCase(chain, request, prompt), ct);
            if (down.Reservation is not null || !capped)
                return Decided(decision with { Chain = chain }, down.Reservation, request.Model, down.SpentToday);
            check = await ledger.ReserveAsync(key, day, WorstCase(decision.Chain, request, prompt), ct);
        }
        // Over the daily budget with no downgrade possible, but under the hard cap: served as asked.
        return check.Reservation is not null || !capped
            ? Decided(decision, check.Reservation, null, check.SpentToday)
            : new BudgetDecision(decision, null, null, Remaining(key, check.SpentToday), HardCapRefusal(key, check.Left, decision.Chain, request, prompt));

        BudgetDecision Decided(RouteDecision chosen, Budgets.Reservation? reservation, string? from, decimal spent)
        {
            // The worst case assumed an output limit; a capped key's request is sent with it.
            if (reservation is not null && request.MaxCompletionTokens is null && request.MaxTokens is null)
                request.MaxTokens = OutputLimit(chosen.Chain.Max(c => c.MaxOutputTokens ?? DefaultWorstCaseOutputTokens), null);
            // Routing succeeded, so the asked alias is one the catalog or a rule names: a bounded label.
            if (from is not null) metrics.Downgraded(from, chosen.First.Alias);
            return new BudgetDecision(chosen, reservation, from, Remaining(key, spent), null);
        }
    }

    // Text counted by the tokenizer; tool definitions, tool calls and images bounded by their JSON size.
    private int PromptBound(ChatCompletionRequest request)
    {
        var other = (request.Tools?.GetRawText().Length ?? 0) + (request.ResponseFormat?.GetRawText().Length ?? 0)
            + request.Messages!.Sum(m => (m.ToolCalls?.GetRawText().Length ?? 0)
                + (m.Content is { ValueKind: JsonValueKind.Array } parts ? parts.GetRawText().Length : 0));
        return tokens.CountPrompt(request.Messages!) + other / 3;
    }

    /// <summary>
    /// The most output the request may ask of any upstream: the largest of every output-limit field it carries, since an
    /// upstream may honour any one of them (an OpenAI-compatible server that reads <c>max_tokens</c> ignores a smaller
    /// <c>max_completion_tokens</c>, and the <c>max_tokens_field</c> quirk keeps the client's own field), including the
    /// Responses/Gemini names passed through as unknown fields; the model's limit when it names none.
    /// </summary>
    private static int OutputLimit(int modelLimit, ChatCompletionRequest? request)
    {
        if (request is null) return modelLimit;
        int? most = null;
        foreach (var limit in (int?[])[request.MaxCompletionTokens, request.MaxTokens, Extra(request, "max_output_tokens"), Extra(request, "maxOutputTokens")])
            if (limit is { } value && (most is null || value > most)) most = value;
        return most ?? modelLimit;
    }

    private static int? Extra(ChatCompletionRequest request, string name) =>
        request.Extra is { } extra && extra.TryGetValue(name, out var value) && value.ValueKind == JsonValueKind.Number
            ? value.TryGetInt32(out var n) ? n : int.MaxValue // larger than an int: the worst case saturates
            : null;

    /// <summary>
    /// Why a capped key's request did not fit: its worst case at the dearest candidate (the one reserved for), what is left
    /// under the cap, and the largest <c>max_tokens</c> that would fit at every candidate's prices.
    /// </summary>
    private static GatewayError HardCapRefusal(GatewayKey key, decimal? left, IReadOnlyList<ModelRoute> chain, ChatCompletionRequest request, int prompt)
    {
        var n = Math.Max(1, request.N ?? 1);
        ModelRoute dearest = chain[0];
        var (worst, dearestOutput) = (decimal.MinValue, 0L);
        var fits = long.MaxValue;
        var room = Math.Max(0, left ?? 0);
        foreach (var route in chain)
        {
            var output = Math.Min(int.MaxValue, (long)OutputLimit(route.MaxOutputTokens ?? DefaultWorstCaseOutputTokens, request) * n);
            var cost = Metering.Pricing.WorstCase(route, prompt, output);
            if (cost > worst) (worst, dearest, dearestOutput) = (cost, route, output);
            var promptCost = Metering.Pricing.WorstCase(route, prompt, 0);
            if (promptCost > room) fits = 0;
            else if (route.OutputPricePerMTok > 0)
                fits = Math.Min(fits, (long)decimal.Floor(Math.Min((room - promptCost) * 1_000_000m / (route.OutputPricePerMTok * n), long.MaxValue)));
        }
        var outputText = dearestOutput.ToString("N0", System.Globalization.CultureInfo.InvariantCulture) + " output tokens"
            + (n > 1 ? $" for {n} choices" : "");
        var input = Metering.Pricing.DearestInputPrice(dearest);
        var reckoning = $"{prompt.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)} prompt tokens + {outputText} at "
            + $"{dearest.Alias}'s prices of {GatewayError.Usd(input)}/{GatewayError.Usd(dearest.OutputPricePerMTok)} per million"
            + (input > dearest.InputPricePerMTok ? ", the prompt priced as a cache write, the dearest way it can be billed" : "");
        return GatewayError.HardCapRefusal(key.HardCapUsd!.Value, room, worst, reckoning, fits == long.MaxValue ? null : fits);
    }

    private static decimal? Remaining(GatewayKey key, decimal spent) => key.DailyBudgetUsd is { } daily ? Math.Max(0, daily - spent) : null;

    // In long: max_tokens near int.MaxValue times n must not wrap around to a negative worst case that fits any cap.
    private static decimal WorstCase(IReadOnlyList<ModelRoute> chain, ChatCompletionRequest request, int promptTokens)
    {
        var worst = decimal.MinValue;
        foreach (var route in chain) // every budgeted request: a loop, no delegate
        {
            var output = Math.Min(int.MaxValue, (long)OutputLimit(route.MaxOutputTokens ?? DefaultWorstCaseOutputTokens, request) * Math.Max(1, request.N ?? 1));
            worst = Math.Max(worst, Metering.Pricing.WorstCase(route, promptTokens, output));
        }
        return worst;
    }

    private readonly FrozenDictionary<string, IChatProvider> _providers = providers.ToFrozenDictionary(p => p.Protocol, StringComparer.Ordinal);
    private readonly FrozenDictionary<string, IEmbeddingProvider> _embedders = embedders.ToFrozenDictionary(p => p.Protocol, StringComparer.Ordinal);

    /// <summary>Starts the usage record of an authenticated request; publish it exactly once.</summary>
    /// <param name="operation"><see cref="GatewayTelemetry.Chat"/> or <see cref="GatewayTelemetry.Embeddings"/>.</param>
    public RequestMeter StartMeter(GatewayKey key, string operation) => new(key, tokens, usage, time, calendar, operation, metrics);

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

    /// <summary>
    /// Applies the key's budgets to an embeddings request: its worst case (the input's tokens at the dearest candidate's
    /// input price) is reserved against the hard cap, and a spent hard cap, month, end-user or team budget refuses it
    /// (429 insufficient_quota). Embeddings are never downgraded: another model's vectors would not match the ones
    /// already stored. Over the daily budget alone they are served as asked.
    /// </summary>
    public async Task<(Budgets.Reservation? Reservation, GatewayError? Refused)> EmbeddingBudgetAsync(GatewayKey key, DateOnly day,
        EmbeddingRequest request, ModelRoute route, CancellationToken ct)
    {
        if (!key.HasBudget && !tagBudgets.Covers(key.Tags)) return (null, null);
        var worstCase = catalog.Chain(route).Max(c => Metering.Pricing.Cost(c, new TokenUsage(request.Tokens(tokens.Count), 0, 0)));
        var check = await ledger.ReserveAsync(key, day, worstCase, ct);
        GatewayError? refused = key.HardCapUsd is not null && check.Reservation is null ? GatewayError.InsufficientQuota
            : key.MonthlyBudgetUsd is { } monthly && await ledger.MonthSpentAsync(key.Id, day) >= monthly ? GatewayError.MonthlyQuota
            : key.EndUserDailyBudgetUsd is { } perUser && request.User is { Length: > 0 } user
              && await ledger.EndUserSpentAsync(key.Id, user, day) >= perUser ? GatewayError.EndUserQuota
            : tagBudgets.Covers(key.Tags) && await tagBudgets.SpentTagAsync(key.Tags, day) is { } tag ? GatewayError.TagQuota(tag)
            : null;
        if (refused is null) return (check.Reservation, null);
        check.Reservation?.Settle(0);
        return (null, refused);
    }

    /// <summary>Embeddings over the model's candidate chain (fallbacks whose protocol cannot embed are passed over).</summary>
    public Task<FailoverResult<UpstreamCompletion>> EmbedAsync(Guid requestId, EmbeddingRequest request, ModelRoute first, CancellationToken ct) =>
        failover.RunAsync(GatewayTelemetry.Embeddings, catalog.Chain(first), (route, token) => _embedders.TryGetValue(route.Provider.Protocol, out var embedder)
            ? embedder.EmbedAsync(new EmbeddingCall(requestId, request, route), token)
            : Task.FromResult<UpstreamResult<UpstreamCompletion>>(new UpstreamFailure(UpstreamFailureKind.Misconfigured, route.Provider.Name, "it cannot embed")), ct);

    private (ModelRoute? Route, GatewayError? Failure) Resolve(GatewayKey key, string alias)
    {
        var route = catalog.Find(alias);
        if (route is null || !_providers.ContainsKey(route.Provider.Protocol)) return (null, GatewayError.ModelNotFound(alias));
        if (!key.MayUse(alias)) return (null, GatewayError.ModelNotAllowed(alias));
        return (route, null);
    }

    /// <summary>
    /// Runs the prompt-injection filter on a routed chat request, at the strictest of <c>Gateway:InjectionFilter</c>, the key's
    /// <c>injection_filter</c> and the routing rule's. Null when the filter is off for the request (nothing is scanned) or
    /// found nothing.
    /// </summary>
    public Guards.InjectionVerdict? Screen(GatewayKey key, ChatCompletionRequest request, RouteDecision decision)
    {
        var action = Stricter(Stricter(options.Value.InjectionFilter, key.InjectionFilter), decision.InjectionFilter);
        if (action == Guards.InjectionAction.Off) return null;
        var categories = injection.Scan(request.Messages!);
        return categories.Count == 0 ? null : new Guards.InjectionVerdict(action, categories);

        static Guards.InjectionAction Stricter(Guards.InjectionAction current, Guards.InjectionAction? other) =>
            other > current ? other.Value : current;
    }

    /// <summary>The models a key may use, for <c>GET /v1/models</c>.</summary>
    public ModelList ListModels(GatewayKey key) => new("list",
        [.. catalog.Models.Where(m => key.MayUse(m.Alias) && _providers.ContainsKey(m.Provider.Protocol))
            .OrderBy(m => m.Alias, StringComparer.Ordinal)
            .Select(m => new ModelEntry(m.Alias, "model", m.CreatedAt.ToUnixTimeSeconds(), m.Provider.Name))]);

    /// <summary>
    /// A non-streaming completion over the model's candidate chain. Each candidate is called streaming where it can be
    /// (<see cref="Assembles"/>) and its chunks assembled into one <c>chat.completion</c>, so the model's first-token deadline
    /// applies as it does to streams: a candidate that hangs, stalls before its first token or breaks half-way fails over
    /// while the client has received nothing. Elsewhere the call is one unstreamed request, bounded by <c>timeout_ms</c>.
    /// </summary>
    /// <param name="mayCallAgain">Asked before another candidate is called after an attempt the provider billed (see
    /// <see cref="FailoverExecutor.RunAsync{T}"/>): a capped key's reservation is topped up by that attempt's cost first.</param>
    /// <param name="reading">Told of each candidate whose stream is being assembled, and of none once its attempt has ended, so
    /// that a client who leaves meanwhile is charged what that candidate had produced.</param>
    public Task<FailoverResult<UpstreamCompletion>> CompleteAsync(Guid requestId, ChatCompletionRequest request, IReadOnlyList<ModelRoute> chain,
        Func<ModelRoute, TokenUsage, bool>? mayCallAgain, CancellationToken ct, Action<ModelRoute, UpstreamStream?>? reading = null) =>
        failover.RunAsync(GatewayTelemetry.Chat, chain, (route, token) => Assembles(route, request)
            ? CompleteStreamingAsync(requestId, request, route, reading, token)
            : Provider(route).CompleteAsync(new UpstreamCall(requestId, request, route), token), ct, mayCallAgain);

    /// <summary>
    /// For a capped key: before another call after one the provider billed, the reservation is topped up by what that call cost,
    /// so the request's total stays within what it reserved (never past the cap); null (any number of calls) without a reservation.
    /// </summary>
    public static Func<ModelRoute, TokenUsage, bool>? TopUp(Budgets.Reservation? reservation) =>
        reservation is null ? null : (route, usage) => reservation.TryTopUp(Metering.Pricing.Cost(route, usage));

    /// <summary>
    /// What a broken stream's continuation costs beyond the one answer its request reserved: the broken attempt (reported, else
    /// estimated from what it produced) and the partial answer sent again as prompt, priced at twice the dearest remaining input
    /// price (the dearest rate a prompt token is billed at: a 1-hour cache write), with room for the instruction.
    /// </summary>
    public decimal ContinuationCost(ModelRoute broken, TokenUsage? reported, ChatCompletionRequest request, string partialAnswer,
        IReadOnlyList<ModelRoute> remaining)
    {
        var sent = tokens.Count(partialAnswer);
        var used = reported ?? new TokenUsage(tokens.CountPrompt(request.Messages!), sent, 0);
        var resent = remaining.Count == 0 ? 0 : remaining.Max(c => Metering.Pricing.Cost(c, new TokenUsage(sent + 64, 0, 0)));
        return Metering.Pricing.Cost(broken, used) + 2 * resent;
    }

    // Request fields whose streamed form carries more than the assembler joins (log probabilities, audio, search annotations).
    private static readonly string[] UnassembledFields = ["logprobs", "top_logprobs", "modalities", "audio", "web_search_options"];

    // Provider/model pairs that refused a streamed call (400) that unstreamed they took: called unstreamed from then on.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _streamRefused = new(StringComparer.Ordinal);

    /// <summary>
    /// Whether a non-streaming request is called streaming and assembled on this candidate: not for the offline mock, a provider
    /// whose <c>assemble_streams</c> is false, an API whose streams carry no usage (<c>stream_usage: false</c>: unstreamed it
    /// reports its usage, which an assembled answer would trade for an estimate), a model that refused a streamed call, more
    /// than one choice, or fields whose streamed form the assembler does not join.
    /// </summary>
    private bool Assembles(ModelRoute route, ChatCompletionRequest request) =>
        route.Provider.Protocol != "mock" && route.Provider.Settings.AssembleStreams != false && route.Provider.Settings.SendsStreamUsage
        && request.N is null or 1
        && !_streamRefused.ContainsKey(ProviderHealth.ModelKey(route.Provider.Name, route.UpstreamModel))
        && (request.Extra is null || !Array.Exists(UnassembledFields, f => request.Extra.TryGetValue(f, out var v) && v.ValueKind is not (JsonValueKind.Null or JsonValueKind.False)));

    private async Task<UpstreamResult<UpstreamCompletion>> CompleteStreamingAsync(Guid requestId, ChatCompletionRequest request, ModelRoute route,
        Action<ModelRoute, UpstreamStream?>? reading, CancellationToken ct)
    {
        var streamed = request.AsStreamed();
        // A model's own ttft_timeout_ms applies as to streams; without one, the longer non-streaming default: reasoning models that
        // think silently were given the whole timeout_ms before, and a client that did not stream did not ask for a fast first token.
        var opened = await OpenPrimedAsync(requestId, streamed, route,
            TimeSpan.FromMilliseconds(route.TtftTimeoutMs ?? failoverOptions.Value.DefaultNonStreamingTtftTimeoutMs), ct);
        if (opened.Failure is { Kind: UpstreamFailureKind.CallerError, UpstreamStatus: 400 } refusal
            && (refusal.CallerError?.Param == "stream" || StreamWord().IsMatch(refusal.CallerError?.Message ?? "")))
        {
            // Some models and APIs take a request only unstreamed (OpenAI: "Unsupported value: 'stream' does not support true with
            // this model"): asked so at once, and from now on if that was the reason.
            var plain = await Provider(route).CompleteAsync(new UpstreamCall(requestId, request, route), ct);
            if (plain.Failure is null // only an answer proves the stream was the refusal's reason
                && _streamRefused.TryAdd(ProviderHealth.ModelKey(route.Provider.Name, route.UpstreamModel), 0))
                Log.StreamRefused(log, route.Provider.Name, route.UpstreamModel, refusal.CallerError?.Message ?? refusal.Detail);
            return plain;
        }
        if (opened.Failure is { } failure) return failure;
        await using var primed = opened.Value!;
        var stream = primed.Inner;
        var assembler = new CompletionAssembler();
        reading?.Invoke(route, stream); // left set if the client goes (an exception): what was read is what it is charged
        try
        {
            await foreach (var chunk in primed.ReadChunksAsync(ct)) assembler.Add(chunk.Json);
        }
        catch (UpstreamStreamException broken)
        {
            reading?.Invoke(route, null);
            // Broken half-way: the provider billed the prompt and what it produced (estimated when it reported nothing).
            var usage = broken.Failure.Usage ?? stream.Usage
                ?? new TokenUsage(tokens.CountPrompt(request.Messages!), tokens.Count(stream.Text.ToString()), 0) { Estimated = true };
            return broken.Failure with { Usage = usage };
        }
        reading?.Invoke(route, null);
        return new UpstreamCompletion(assembler.Build(stream.ServedModel), stream.Usage, stream.ServedModel, stream.Usage is null ? stream.Text.ToString() : "");
    }

    /// <summary>
    /// A stream over the model's candidate chain, each candidate held back until its first token
    /// (within the model's <c>ttft_timeout_ms</c>, else Gateway:Failover:DefaultTtftTimeoutMs).
    /// </summary>
    public Task<FailoverResult<PrimedStream>> OpenStreamAsync(Guid requestId, ChatCompletionRequest request, IReadOnlyList<ModelRoute> chain,
        Func<ModelRoute, TokenUsage, bool>? mayCallAgain, CancellationToken ct) =>
        failover.RunAsync(GatewayTelemetry.Chat, chain, (route, token) => OpenPrimedAsync(requestId, request, route, token), ct, mayCallAgain);

    private Task<UpstreamResult<PrimedStream>> OpenPrimedAsync(Guid requestId, ChatCompletionRequest request, ModelRoute route, CancellationToken ct) =>
        OpenPrimedAsync(requestId, request, route, TimeSpan.FromMilliseconds(route.TtftTimeoutMs ?? failoverOptions.Value.DefaultTtftTimeoutMs), ct);

    private Task<UpstreamResult<PrimedStream>> OpenPrimedAsync(Guid requestId, ChatCompletionRequest request, ModelRoute route, TimeSpan firstToken,
        CancellationToken ct) =>
        PrimedStream.OpenAsync(open => Provider(route).OpenStreamAsync(new UpstreamCall(requestId, request, route), open), route.Provider.Name,
            firstToken, ct);

    private IChatProvider Provider(ModelRoute route) => _providers[route.Provider.Protocol];

    /// <summary>What a continuation asks of a candidate that cannot continue the partial answer natively.</summary>
    public const string ContinuePrompt = "Continue exactly where your previous message stopped. Do not repeat any of it and do not comment on the interruption.";

    // Provider/model pairs that refused a prefilled continuation (400) once: asked with the instruction from then on.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _prefillRefused = new(StringComparer.Ordinal);

    /// <summary>
    /// Continues a broken stream on the remaining candidates, each asked in the form its protocol continues natively: Anthropic gets
    /// the partial answer as a prefilled last assistant turn (trailing whitespace trimmed, as the API requires), an
    /// OpenAI-compatible API whose provider sets <c>prefix_completion</c> gets it as an assistant message with <c>"prefix": true</c>.
    /// Other protocols, JSON mode, and models that once refused a prefill with a 400 (newer Claude models do) get the partial
    /// answer followed by <see cref="ContinuePrompt"/>. A refused prefill is retried on the same candidate with the instruction.
    /// The client's output limit covers the whole answer, the part already sent included.
    /// </summary>
    public Task<FailoverResult<PrimedStream>> ContinueStreamAsync(Guid requestId, ChatCompletionRequest original, string partialAnswer,
        IReadOnlyList<ModelRoute> chain, Func<ModelRoute, TokenUsage, bool>? mayCallAgain, CancellationToken ct)
    {
        var copy = JsonSerializer.Deserialize(JsonSerializer.SerializeToUtf8Bytes(original, GatewayJsonContext.Wire.ChatCompletionRequest),
            GatewayJsonContext.Wire.ChatCompletionRequest)!;
        var sent = tokens.Count(partialAnswer);
        if (copy.MaxCompletionTokens is { } maxCompletion) copy.MaxCompletionTokens = Math.Max(1, maxCompletion - sent);
        if (copy.MaxTokens is { } max) copy.MaxTokens = Math.Max(1, max - sent);
        // A partial answer of whitespace only said nothing: the question is asked again (Anthropic refuses a turn of whitespace only,
        // as a prefill or before an instruction), and the splice drops the whitespace if the answer starts with it again.
        if (string.IsNullOrWhiteSpace(partialAnswer))
            return failover.RunAsync(GatewayTelemetry.Chat, chain, (route, token) => OpenPrimedAsync(requestId, copy, route, token), ct, mayCallAgain);
        var instructed = copy.WithMessages([.. copy.Messages!, Message("assistant", partialAnswer), Message("user", ContinuePrompt)]);
        return failover.RunAsync(GatewayTelemetry.Chat, chain, async (route, token) =>
        {
            if (Prefilled(route, copy, partialAnswer) is not { } native) return await OpenPrimedAsync(requestId, instructed, route, token);
            var opened = await OpenPrimedAsync(requestId, native, route, token);
            if (opened.Failure is not { Kind: UpstreamFailureKind.CallerError, UpstreamStatus: 400 } refusal) return opened;
            var retried = await OpenPrimedAsync(requestId, instructed, route, token);
            // Only a refusal the instruction got past was the prefill's: remembered, so later continuations skip the refused call.
            if (retried.Failure is not { Kind: UpstreamFailureKind.CallerError }
                && _prefillRefused.TryAdd(ProviderHealth.ModelKey(route.Provider.Name, route.UpstreamModel), 0))
                Log.PrefillRefused(log, route.Provider.Name, route.UpstreamModel, refusal.CallerError?.Message ?? refusal.Detail);
            return retried;
        }, ct, mayCallAgain);
    }

    // The continuation as this candidate's protocol continues it natively, or null when it cannot.
    private ChatCompletionRequest? Prefilled(ModelRoute route, ChatCompletionRequest copy, string partialAnswer)
    {
        if (_prefillRefused.ContainsKey(ProviderHealth.ModelKey(route.Provider.Name, route.UpstreamModel))) return null;
        switch (route.Provider.Protocol)
        {
            // JSON mode is a forced tool for Anthropic: its answer is the tool's input, not text a prefill could start.
            case "anthropic" when IsPlainText(copy.ResponseFormat) && partialAnswer.TrimEnd() is { Length: > 0 } trimmed:
                return copy.WithMessages([.. copy.Messages!, Message("assistant", trimmed)]);
            case "openai" when route.Provider.Settings.PrefixCompletion == true:
                var prefix = Message("assistant", partialAnswer);
                prefix.Extra = new() { ["prefix"] = True };
                return copy.WithMessages([.. copy.Messages!, prefix]);
            default:
                return null;
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"\bstream", System.Text.RegularExpressions.RegexOptions.IgnoreCase)]
    private static partial System.Text.RegularExpressions.Regex StreamWord();

    private static readonly JsonElement True = JsonDocument.Parse("true").RootElement.Clone();

    private static partial class Log
    {
        [LoggerMessage(EventId = 1703, Level = LogLevel.Information,
            Message = "Provider {Provider} model {Model} refused a prefilled continuation ({Detail}); its continuations use an instruction from now on")]
        public static partial void PrefillRefused(ILogger logger, string provider, string model, string detail);

        [LoggerMessage(EventId = 1704, Level = LogLevel.Information,
            Message = "Provider {Provider} model {Model} refused a streamed call that it took unstreamed ({Detail}); its non-streaming requests are sent unstreamed from now on")]
        public static partial void StreamRefused(ILogger logger, string provider, string model, string detail);
    }

    // No response_format, or {"type":"text"}: the answer is text a prefill can start.
    private static bool IsPlainText(JsonElement? format) =>
        format is not { ValueKind: JsonValueKind.Object } f || f.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "text";

    private static ChatMessage Message(string role, string text) =>
        new() { Role = role, Content = JsonSerializer.SerializeToElement(text, GatewayJsonContext.Wire.String) };
}
