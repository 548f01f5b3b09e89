using System.Diagnostics;
using Gateway.Core.Catalog;
using Gateway.Core.Errors;
using Gateway.Core.Keys;
using Gateway.Core.Metering;
using Gateway.Core.Providers;
using Gateway.Core.Telemetry;
using Gateway.Core.Tokens;
using Gateway.Core.Wire;

namespace Gateway.Core.Chat;

/// <summary>
/// Builds one request's <see cref="UsageRecord"/> as the request goes, and publishes it exactly once,
/// whatever happened (call <see cref="PublishAsync"/> from a <c>finally</c>).
/// </summary>
public sealed class RequestMeter
{
    /// <summary>Status stored for a client that went away before the answer was complete (nginx's convention).</summary>
    public const short ClientClosedRequest = 499;

    private readonly TokenCounter _tokens;
    private readonly UsageChannel _usage;
    private readonly TimeProvider _time;
    private readonly long _started;
    private readonly UsageRecord _record;
    private readonly GatewayMetrics? _metrics;
    private ModelRoute? _route;
    private string? _firstAlias;
    private Func<int>? _promptTokens;
    private Func<int>? _promptGuess;
    private TokenUsage? _reported;
    private (TokenUsage Tokens, decimal Cost, bool Estimated) _earlier;
    private bool _published;

    internal RequestMeter(GatewayKey key, TokenCounter tokens, UsageChannel usage, TimeProvider time, Budgets.BudgetCalendar calendar,
        string operation = GatewayTelemetry.Chat, GatewayMetrics? metrics = null, string? frontDoor = null)
    {
        Operation = operation;
        _metrics = metrics;
        _tokens = tokens;
        _usage = usage;
        _time = time;
        _started = time.GetTimestamp();
        var now = time.GetUtcNow();
        _record = new UsageRecord
        {
            RequestId = Guid.CreateVersion7(now),
            OccurredAt = now,
            KeyId = key.Id,
            Day = calendar.DayOf(now),
            Status = 200,
            FrontDoor = frontDoor,
        };
    }

    public Guid RequestId => _record.RequestId;

    /// <summary><c>gen_ai.operation.name</c>: <see cref="GatewayTelemetry.Chat"/> or <see cref="GatewayTelemetry.Embeddings"/>.</summary>
    public string Operation { get; }

    public void Asked(ChatCompletionRequest request)
    {
        _promptTokens = () => _tokens.CountPrompt(request.Messages!);
        _promptGuess = () => request.Messages!.Sum(m => Guess(m.Text()));
        _record.AskedModel = request.Model;
        _record.EndUser = request.User;
        _record.Streamed = request.IsStreaming;
    }

    public void Asked(EmbeddingRequest request)
    {
        _promptTokens = () => request.Tokens(_tokens.Count);
        _promptGuess = () => request.Tokens(Guess); // token arrays counted as they are
        _record.AskedModel = request.Model;
        _record.EndUser = request.User;
    }

    /// <summary>Records the model that serves the request, with the prices in force now.</summary>
    public void Routed(ModelRoute route)
    {
        _route = route;
        _record.Provider = route.Provider.Name;
        _record.ServedModel = route.UpstreamModel;
        _record.InputPricePerMTok = route.InputPricePerMTok;
        _record.OutputPricePerMTok = route.OutputPricePerMTok;
        _record.CachedInputPricePerMTok = route.CachedInputPricePerMTok;
        _record.CacheWritePricePerMTok = route.CacheWritePricePerMTok;
        _record.CacheWrite1hPricePerMTok = route.CacheWrite1hPricePerMTok;
    }

    public void FirstToken() => _record.TtftMs ??= ElapsedMs();

    /// <summary>The routing rule that chose the model (null: the asked alias itself).</summary>
    public void Rule(string? rule) => _record.RoutingRule = rule;

    /// <summary>The budget lease the request's worst case was reserved from, and the alias it was downgraded from.</summary>
    public void Budgeted(Guid? leaseId, string? downgradedFrom)
    {
        _record.LeaseId = leaseId;
        _record.DowngradedFrom = downgradedFrom;
    }

    /// <summary>Answered from the response cache: the tokens of the original answer, no cost.</summary>
    public void CacheHit(TokenUsage usage, string? servedModel)
    {
        if (servedModel is not null) _record.ServedModel = servedModel;
        _record.CacheHit = true;
        _record.PromptTokens = usage.PromptTokens;
        _record.CompletionTokens = usage.CompletionTokens;
        _record.CachedTokens = usage.CachedTokens;
        _record.CostUsd = 0;
    }

    /// <summary>What the prompt-injection filter found in the request (it was flagged or blocked).</summary>
    public void InjectionFound(IReadOnlyList<string> categories) => _record.InjectionFlags = categories;

    /// <summary>The budget day the request's usage row counts on.</summary>
    public DateOnly Day => _record.Day;

    /// <summary>
    /// What the request's budget reservation settles at: exactly the cost its usage row records (an estimate, flagged, when
    /// the client left or the call broke with no usage reported), so the lease, <c>usage_daily</c> and every report agree.
    /// Charging the reserved worst case instead locked a capped key for the day after a few aborted streams, at a spend no
    /// report showed.
    /// </summary>
    public decimal BudgetCost => _record.CostUsd;

    /// <summary>
    /// Records the candidates tried. <paramref name="last"/> (the one that served, or the last one called)
    /// sets the provider, model and prices; usage failed attempts reported is charged at their own prices.
    /// </summary>
    public void Attempted(IReadOnlyList<Failover.AttemptRecord> attempts, ModelRoute first, ModelRoute? last, bool served,
        IReadOnlyList<(ModelRoute Route, TokenUsage Usage)>? billed = null)
    {
        if (last is not null) Routed(last);
        _firstAlias = first.Alias;
        foreach (var (route, usage) in billed ?? []) ContinuedAfter(route, usage, "");
        _record.Attempts = (short)Math.Max(1, attempts.Count(a => !Failover.SkipReasons.IsSkip(a.Outcome)));
        _record.Fallback = served && last is not null && last.Alias != first.Alias;
        if (attempts.Count > 1 || attempts is [{ Outcome: not "ok" }])
            _record.AttemptTrail = System.Text.Json.JsonSerializer.Serialize(attempts, Failover.AttemptJsonContext.Default.IReadOnlyListAttemptRecord);
    }

    /// <param name="estimated">The adapter counted <paramref name="reported"/> itself (the provider gives no usage).</param>
    public void Succeeded(TokenUsage? reported, string? servedModel, string completionText, bool estimated = false)
    {
        if (servedModel is not null) _record.ServedModel = servedModel;
        Charge(reported, completionText);
        _record.UsageEstimated |= estimated;
    }

    /// <summary>
    /// A failure answered to the client. <paramref name="completionText"/> is what the provider already
    /// produced (a broken stream) and <paramref name="reported"/> its usage if it sent any.
    /// </summary>
    public void Failed(GatewayError error, string? completionText = null, TokenUsage? reported = null)
    {
        _record.Status = (short)error.Status;
        _record.ErrorKind = error.Kind;
        if (completionText is not null || reported is not null) Charge(reported, completionText ?? "");
        else if (_earlier != default) Charge(new TokenUsage(0, 0, 0), ""); // earlier attempts' usage only
    }

    /// <summary>The client went away. Usage the provider reported is kept; otherwise it is estimated.</summary>
    /// <summary>
    /// A stream that broke after the client had tokens and is continued on another candidate: what the
    /// broken attempt used (reported, else estimated from <paramref name="completionText"/>) is added to the
    /// record at that attempt's prices, so the row counts both attempts' tokens and cost.
    /// </summary>
    public void ContinuedAfter(ModelRoute brokenRoute, TokenUsage? reported, string completionText)
    {
        var usage = reported ?? Estimate(completionText);
        _earlier = (_earlier.Tokens.Plus(usage), _earlier.Cost + Pricing.Cost(brokenRoute, usage), _earlier.Estimated || reported is not { Estimated: false });
    }

    /// <summary>Tokens of attempts a continuation took over from (for the spliced stream's usage chunk).</summary>
    public (int Prompt, int Completion) EarlierTokens => (_earlier.Tokens.PromptTokens, _earlier.Tokens.CompletionTokens);

    public void ClientDisconnected(string completionText, TokenUsage? reported = null)
    {
        _record.Status = ClientClosedRequest;
        _record.ErrorKind = "client_disconnected";
        // The provider was asked, so its prompt was (very likely) billed: estimate rather than write $0.
        if (_route is not null) Charge(reported ?? _reported, completionText);
    }

    public void Crashed()
    {
        _record.Status = 500;
        _record.ErrorKind = "internal_error";
    }

    private void Charge(TokenUsage? reported, string completionText)
    {
        _reported ??= reported;
        var usage = reported ?? Estimate(completionText);
        _record.UsageEstimated = reported is null || _earlier.Estimated;
        var tokens = _earlier.Tokens.Plus(usage);
        _record.PromptTokens = tokens.PromptTokens;
        _record.CompletionTokens = tokens.CompletionTokens;
        _record.CachedTokens = tokens.CachedTokens;
        _record.CacheWriteTokens = tokens.CacheWriteTokens;
        _record.CacheWrite1hTokens = tokens.CacheWrite1hTokens;
        _record.CostUsd = _earlier.Cost + (_route is null ? 0 : Pricing.Cost(_route, usage));
    }

    private TokenUsage Estimate(string completionText) =>
        new(PromptEstimate(), completionText.Length == 0 ? 0 : _tokens.Count(completionText), 0);

    private int? _promptCount;

    // Tokens of a text guessed from its UTF-8 size: English text runs ~4 characters a token, CJK ~0.75 tokens a character.
    private static int Guess(string text) => System.Text.Encoding.UTF8.GetByteCount(text) / 4 + 1;

    private int PromptEstimate() => _promptCount ??= _promptTokens?.Invoke() ?? 0;

    private int ElapsedMs() => (int)Math.Min(int.MaxValue, _time.GetElapsedTime(_started).TotalMilliseconds);

    /// <summary>What an in-flight request's row says if the process died before the request ended.</summary>
    public const string InterruptedKind = "interrupted";

    /// <summary>
    /// Journals what the request leaves if the process dies before it ends (<c>kill -9</c>, a crash, a request outliving shutdown):
    /// status 500 <see cref="InterruptedKind"/>, the prompt estimated (the provider was about to be asked) and flagged, at the
    /// routed model's prices. Call before the upstream call, so a stream whose request id the client has seen always has a row.
    /// The line is spent once the final record is in PostgreSQL; only the next start replays it, if no final record exists.
    /// </summary>
    public ValueTask InFlightAsync()
    {
        if (_published || !_usage.Journaled) return ValueTask.CompletedTask;
        var line = _record.Copy();
        line.InFlight = true;
        line.Status = 500;
        line.ErrorKind = InterruptedKind;
        // Not the tokenizer on every request's path (providers report usage, so it is rarely needed): a prompt counted
        // already, else a guess from its size (Guess), flagged either way.
        var usage = new TokenUsage(_promptCount ?? _promptGuess?.Invoke() ?? 0, 0, 0);
        line.PromptTokens = _earlier.Tokens.PromptTokens + usage.PromptTokens;
        line.CompletionTokens = _earlier.Tokens.CompletionTokens;
        line.UsageEstimated = true;
        line.CostUsd = _earlier.Cost + (_route is null ? 0 : Pricing.Cost(_route, usage));
        line.LatencyMs = ElapsedMs();
        _record.InFlightLine = line;
        return _usage.CheckpointAsync(line);
    }

    /// <summary>Journals the record as it stands (call before the answer's last bytes go out; publishing later queues it).</summary>
    public ValueTask CheckpointAsync()
    {
        if (_published) return ValueTask.CompletedTask;
        _record.LatencyMs = ElapsedMs();
        return _usage.CheckpointAsync(_record);
    }

    /// <summary>Queues the record and counts the request in the metrics; only the first call counts.</summary>
    public ValueTask PublishAsync()
    {
        if (_published) return ValueTask.CompletedTask;
        _published = true;
        _record.LatencyMs = ElapsedMs();
        Debug.Assert(_record.Status != 0);
        _metrics?.Requested(_record, Operation, _record.Fallback ? _firstAlias : null, _route?.Alias);
        return _usage.PublishAsync(_record);
    }

    /// <summary>
    /// What the request's span says of it once it is answered: how it was routed and served, its usage and status. The
    /// asked model is named only once routing accepted it (before that it is whatever the client sent).
    /// </summary>
    public void Describe(Activity? span)
    {
        if (span is not { IsAllDataRequested: true }) return;
        if (_route is not null) span.SetTag(GatewayTelemetry.RequestModel, _record.AskedModel);
        if (_record.Provider is { } provider) span.SetTag(GatewayTelemetry.GatewayProvider, provider);
        if (_record.ServedModel is { } served) span.SetTag(GatewayTelemetry.ResponseModel, served);
        span.SetTag("http.response.status_code", (int)_record.Status);
        span.SetTag("gateway.attempts", (int)_record.Attempts);
        if (_record.Fallback) span.SetTag("gateway.fallback", true);
        if (_record.DowngradedFrom is { } from) span.SetTag("gateway.downgraded_from", from);
        if (_record.CacheHit) span.SetTag("gateway.cache_hit", true);
        if (_record.RoutingRule is { } rule) span.SetTag("gateway.routing_rule", rule);
        span.SetTag("gen_ai.usage.input_tokens", _record.PromptTokens);
        span.SetTag("gen_ai.usage.output_tokens", _record.CompletionTokens);
        if (_record.Status < 400) return;
        span.SetTag(GatewayTelemetry.ErrorType, _record.ErrorKind ?? _record.Status.ToString(System.Globalization.CultureInfo.InvariantCulture));
        span.SetStatus(ActivityStatusCode.Error);
    }
}
