using System.Text.Json;
using Gateway.Core.Catalog;
using Gateway.Core.Errors;
using Gateway.Core.Keys;
using Gateway.Core.Metering;
using Gateway.Core.Providers;
using Gateway.Core.Routing;
using Gateway.Core.Tokens;
using Gateway.Core.Wire;
using Microsoft.Extensions.Options;

namespace Gateway.Core.Budgets;

/// <summary>
/// Step 7 of the pipeline (<see cref="Pipeline.ChatPipeline"/>): a request's worst case reserved against its key's budgets before
/// anything is sent, with the downgrade tiers and refusals that follows from; and the top-ups a second billed call needs.
/// </summary>
public sealed class RequestBudget(ModelCatalog catalog, BudgetLedger ledger, TagBudgets tagBudgets, TokenCounter tokens,
    IOptions<GatewayOptions> options, GatewayMetrics metrics)
{
    /// <summary>Output limit assumed for a worst case when neither the request nor the model sets one.</summary>
    public const int DefaultWorstCaseOutputTokens = 4096;

    /// <summary>What a key's budget decided for a request: the route and the request to send (a capped key's with the output
    /// limit its worst case assumed), the reservation, a downgrade, what is left of the day's budget, or a refusal.</summary>
    public sealed record BudgetDecision(RouteDecision Decision, ChatCompletionRequest Request, Reservation? Reservation, string? DowngradedFrom,
        decimal? Remaining, GatewayError? Refused);

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
            return new BudgetDecision(decision, request, null, null, null, null);
        // Input the upstream fetches itself (a file by URL, a prompt template) has no size here: no worst case covers it.
        if (key.HardCapUsd is not null && request.Native is { Unbounded.Count: > 0 } unbounded)
            return new BudgetDecision(decision, request, null, null, null, GatewayError.BadRequest(
                $"This key has a hard cap, and {string.Join(", ", unbounded.Unbounded!)} cannot be bounded against it before the call: "
                + "send the content in the request itself.", "input", "unbounded_input"));
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
            return new BudgetDecision(decision, request, null, null, Remaining(key, check.SpentToday), error);
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
            : new BudgetDecision(decision, request, null, null, Remaining(key, check.SpentToday), HardCapRefusal(key, check.Left, decision.Chain, request, prompt));

        BudgetDecision Decided(RouteDecision chosen, Reservation? reservation, string? from, decimal spent)
        {
            // The worst case assumed an output limit; a capped key's request is sent with it.
            var sent = reservation is not null && request.MaxCompletionTokens is null && request.MaxTokens is null
                ? request.WithMaxTokens(OutputLimit(chosen.Chain.Max(c => c.MaxOutputTokens ?? DefaultWorstCaseOutputTokens), null))
                : request;
            // Routing succeeded, so the asked alias is one the catalog or a rule names: a bounded label.
            if (from is not null) metrics.Downgraded(from, chosen.First.Alias);
            return new BudgetDecision(chosen, sent, reservation, from, Remaining(key, spent), null);
        }
    }

    // Text counted by the tokenizer; tool definitions, tool calls and images bounded by their JSON size.
    private int PromptBound(ChatCompletionRequest request)
    {
        var other = (request.Tools?.GetRawText().Length ?? 0) + (request.ResponseFormat?.GetRawText().Length ?? 0)
            + request.Messages!.Sum(m => (m.ToolCalls?.GetRawText().Length ?? 0)
                + (m.Content is { ValueKind: JsonValueKind.Array } parts ? parts.GetRawText().Length : 0));
        var bound = tokens.CountPrompt(request.Messages!) + other / 3;
        // A passed-through request's own body may hold what its translation left out (a PDF, a document, encrypted reasoning): bounded
        // by its size too.
        return request.Native is { } native
            ? Math.Max(bound, System.Text.Encoding.UTF8.GetByteCount(native.Body.ToJsonString()) / 3)
            : bound;
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
            var cost = Pricing.WorstCase(route, prompt, output);
            if (cost > worst) (worst, dearest, dearestOutput) = (cost, route, output);
            var promptCost = Pricing.WorstCase(route, prompt, 0);
            if (promptCost > room) fits = 0;
            else if (route.OutputPricePerMTok > 0)
                fits = Math.Min(fits, (long)decimal.Floor(Math.Min((room - promptCost) * 1_000_000m / (route.OutputPricePerMTok * n), long.MaxValue)));
        }
        var outputText = dearestOutput.ToString("N0", System.Globalization.CultureInfo.InvariantCulture) + " output tokens"
            + (n > 1 ? $" for {n} choices" : "");
        var input = Pricing.DearestInputPrice(dearest);
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
            worst = Math.Max(worst, Pricing.WorstCase(route, promptTokens, output));
        }
        return worst;
    }

    /// <summary>
    /// Applies the key's budgets to an embeddings request: its worst case (the input's tokens at the dearest candidate's
    /// input price) is reserved against the hard cap, and a spent hard cap, month, end-user or team budget refuses it
    /// (429 insufficient_quota). Embeddings are never downgraded: another model's vectors would not match the ones
    /// already stored. Over the daily budget alone they are served as asked.
    /// </summary>
    public async Task<(Reservation? Reservation, GatewayError? Refused)> EmbeddingBudgetAsync(GatewayKey key, DateOnly day,
        EmbeddingRequest request, ModelRoute route, CancellationToken ct)
    {
        if (!key.HasBudget && !tagBudgets.Covers(key.Tags)) return (null, null);
        var worstCase = catalog.Chain(route).Max(c => Pricing.Cost(c, new TokenUsage(request.Tokens(tokens.Count), 0, 0)));
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

    /// <summary>
    /// For a capped key: before another call after one the provider billed, the reservation is topped up by what that call cost,
    /// so the request's total stays within what it reserved (never past the cap); null (any number of calls) without a reservation.
    /// </summary>
    public static Func<ModelRoute, TokenUsage, bool>? TopUp(Reservation? reservation) =>
        reservation is null ? null : (route, usage) => reservation.TryTopUp(Pricing.Cost(route, usage));

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
        var resent = remaining.Count == 0 ? 0 : remaining.Max(c => Pricing.Cost(c, new TokenUsage(sent + 64, 0, 0)));
        return Pricing.Cost(broken, used) + 2 * resent;
    }
}
