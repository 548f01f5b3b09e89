using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Budgets;
using Gateway.Core.Caching;
using Gateway.Core.Catalog;
using Gateway.Core.Chat;
using Gateway.Core.Errors;
using Gateway.Core.Failover;
using Gateway.Core.Guards;
using Gateway.Core.Keys;
using Gateway.Core.Limits;
using Gateway.Core.Logging;
using Gateway.Core.Providers;
using Gateway.Core.Routing;
using Gateway.Core.Telemetry;
using Gateway.Core.Tokens;
using Gateway.Core.Validation;
using Gateway.Core.Wire;
using Microsoft.Extensions.Logging;

namespace Gateway.Core.Pipeline;

/// <summary>
/// Runs one request from any front door. A front door authenticates the key, parses its wire format into the canonical request
/// (OpenAI's chat request), runs the pipeline, and writes the <see cref="PipelineResult"/> in its wire format.
/// </summary>
/// <remarks>
/// Steps, in order (DESIGN.md numbers them the same; each is marked <c>// :: Step N</c> below):
/// <list type="number">
/// <item>Key context: <see cref="Start"/> begins the usage record, the span and the log scope for the authenticated key.</item>
/// <item>Canonical request: the front door's parse result; a body it could not read is answered in its own error shape.</item>
/// <item>Limits: the key's requests and tokens per minute (<see cref="KeyRateLimiter"/>).</item>
/// <item>Route: rules, else the alias and its fallbacks, give the candidate chain (<see cref="ChatRouter"/>).</item>
/// <item>Screen: the prompt-injection filter (<see cref="InjectionScreen"/>), after routing since a rule may set it, before the
/// cache and the budget, so a blocked request costs nothing.</item>
/// <item>Cache: a deterministic request may be answered from the key's scope of the response cache (<see cref="ResponseCache"/>).</item>
/// <item>Budget: the worst case reserved against the key's budgets; a downgrade or a refusal (<see cref="RequestBudget"/>).</item>
/// <item>Call with failover: the chain, with deadlines, breakers and cool-downs (<see cref="UpstreamCaller"/>); a stream that breaks
/// after the client had text continues on the next candidate.</item>
/// <item>Result: a complete answer, or a stream of canonical chunks (<see cref="StreamEvent"/>), or an error.</item>
/// <item>Meter: journalled in flight before the call and again when the answer is decided; the record is published exactly once when
/// the <see cref="PipelineRun"/> is disposed, and the budget settled at exactly its cost.</item>
/// </list>
/// A step that ends the request returns a failed <see cref="PipelineResult"/>; expected failures never throw.
/// </remarks>
public sealed partial class ChatPipeline(ChatRouter router, InjectionScreen screen, ResponseCache cache, RequestBudget budget,
    UpstreamCaller caller, KeyRateLimiter limiter, ProviderHealth health, RequestMeters meters, TokenCounter tokens, BodyLog bodies,
    ILogger<ChatPipeline> log)
{
    /// <summary>Step 1: begins a request for an authenticated key. Dispose the run when the front door has written the result.</summary>
    /// <param name="key">The key the front door authenticated.</param>
    /// <param name="operation"><see cref="GatewayTelemetry.Chat"/> or <see cref="GatewayTelemetry.Embeddings"/>.</param>
    /// <param name="frontDoor">The front door's name on the usage row (<see cref="FrontDoorNames"/>).</param>
    public PipelineRun Start(GatewayKey key, string operation, string frontDoor)
    {
        var meter = meters.Start(key, operation, frontDoor);
        var requestId = meter.RequestId.ToString();
        var span = GatewayTelemetry.StartRequest(operation, requestId);
        // The key's prefix is the 11 characters shown in the admin app, never the key itself.
        var scope = Log.RequestScope(log, requestId, key.Prefix);
        return new PipelineRun(key, meter, span, scope);
    }

    /// <summary>Runs a chat request through every step.</summary>
    /// <param name="run">The request, from <see cref="Start"/>.</param>
    /// <param name="parsed">The front door's canonical request, or why its body was refused.</param>
    /// <param name="header">Reads a request header (routing rules may match on headers).</param>
    /// <param name="ct">The request's token: the client's abort.</param>
    public async Task<PipelineResult> ChatAsync(PipelineRun run, ParseResult parsed, Func<string, string?> header, CancellationToken ct)
    {
        var (key, meter, facts) = (run.Key, run.Meter, run.Facts);
        // :: Step 2 — canonical request
        if (parsed.Failure is { } invalid) return await run.FailAsync(invalid);
        var request = parsed.Value!;
        meter.Asked(request);
        bodies.Prompt(meter.RequestId, request);

        // :: Step 3 — limits. In long: a max_tokens near int.MaxValue must not wrap around to a negative cost that passes any limit.
        if (await LimitAsync(run, () => (int)Math.Min(int.MaxValue, (long)tokens.CountPrompt(request.Messages!) + (request.MaxCompletionTokens ?? request.MaxTokens ?? 0)))
            is { } limited)
            return await run.FailAsync(limited);

        // :: Step 4 — route
        var (decision, refused) = router.Route(key, request, header);
        if (refused is not null) return await run.FailAsync(refused);
        meter.Rule(decision!.Rule); // the rule that chose the route, on the row from here on (a downgrade keeps it)

        // :: Step 5 — screen
        if (screen.Screen(key, request, decision) is { } verdict)
        {
            meter.InjectionFound(verdict.Categories);
            if (verdict.Refusal is { } blocked) return await run.FailAsync(blocked);
            facts.InjectionFlagged = true;
        }

        // :: Step 6 — cache
        byte[]? cacheKey = null;
        if (key.CacheTtlSeconds is not null && ResponseCache.IsCacheable(request))
        {
            cacheKey = ResponseCache.Key(request, decision.First, key);
            if (await cache.GetAsync(cacheKey, key, ct) is { } cached)
            {
                // Served without calling a provider: no budget reservation, no cost.
                facts.Cache = PipelineFacts.CacheHit;
                meter.Routed(decision.First);
                meter.CacheHit(cached.Usage, cached.ServedModel);
                await run.FinishingAsync();
                facts.Served(cached.Provider, cached.ServedModel ?? decision.First.UpstreamModel);
                return request.IsStreaming
                    ? PipelineResult.Streamed(facts, Replay(ResponseCache.AsChunks(cached.Body, request.ClientWantsStreamUsage)))
                    : PipelineResult.Answered(facts, cached.Body);
            }
            facts.Cache = PipelineFacts.CacheMiss;
        }

        // :: Step 7 — budget
        var budgeted = await budget.BudgetAsync(key, meter.Day, request, decision, ct);
        run.Reservation = budgeted.Reservation;
        facts.BudgetRemaining = budgeted.Remaining;
        if (budgeted.Refused is { } overCap) return await run.FailAsync(overCap);
        (decision, request) = (budgeted.Decision, budgeted.Request);
        if (budgeted.DowngradedFrom is { } original)
        {
            facts.DowngradedFrom = original;
            // The cheaper model's answer is this key's budget talking, not the asked model's answer: stored under the asked
            // model it would be served to every key sharing the entry, within budget or not (and allowed that model or not).
            cacheKey = null;
        }
        meter.Budgeted(budgeted.Reservation?.LeaseId, budgeted.DowngradedFrom);
        var first = decision.First;
        meter.Routed(first);
        facts.Rule = decision.Rule;
        await meter.InFlightAsync(); // (10) from here on a provider may bill: a kill -9 still leaves this request's row

        // :: Step 8 — call with failover. A capped key's reservation covered one answer: a call after a billed one needs a top-up.
        if (!request.IsStreaming)
        {
            var result = await caller.CompleteAsync(meter.RequestId, request, decision.Chain, RequestBudget.TopUp(run.Reservation), ct,
                (candidate, stream) => run.Assembling = stream is null ? null : (candidate, stream));
            run.Attempted(result, first);
            if (result.Failure is { } failed) return await run.FailAsync(failed.ToGatewayError());

            // :: Step 9 — result; step 10 — meter
            var answer = result.Value!;
            meter.Succeeded(answer.Usage, answer.ServedModel, answer.Text, answer.UsageEstimated);
            bodies.Answer(meter.RequestId, answer);
            await run.FinishingAsync();
            facts.Served(result.Route!.Provider.Name, answer.ServedModel ?? result.Route.UpstreamModel);
            // Cached under the model that was asked for (a fallback's answer too: it is what that request gets).
            if (cacheKey is not null && answer.Usage is not null) cache.Store(cacheKey, answer, result.Route, key.CacheTtlSeconds!.Value);
            return PipelineResult.Answered(facts, answer.Body, answer.Native);
        }

        var opened = await caller.OpenStreamAsync(meter.RequestId, request, decision.Chain, RequestBudget.TopUp(run.Reservation), ct);
        run.Attempted(opened, first);
        if (opened.Failure is { } notOpened) return await run.FailAsync(notOpened.ToGatewayError());
        run.Primed = opened.Value!;
        facts.Served(opened.Route!.Provider.Name, opened.Route.UpstreamModel);
        // :: Step 9 — result (the stream meters itself as it ends: step 10)
        return PipelineResult.Streamed(facts, RelayAsync(run, request, decision, opened, cacheKey, ct));
    }

    /// <summary>Runs an embeddings request through the steps that apply to it: limits, route, budget, call, meter.</summary>
    /// <param name="run">The request, from <see cref="Start"/>.</param>
    /// <param name="parsed">The front door's embeddings request, or why its body was refused.</param>
    /// <param name="ct">The request's token: the client's abort.</param>
    public async Task<PipelineResult> EmbedAsync(PipelineRun run, (EmbeddingRequest? Value, GatewayError? Failure) parsed, CancellationToken ct)
    {
        var (key, meter) = (run.Key, run.Meter);
        // :: Step 2 — canonical request
        if (parsed.Failure is { } invalid) return await run.FailAsync(invalid);
        var request = parsed.Value!;
        meter.Asked(request);
        // :: Step 3 — limits
        if (await LimitAsync(run, () => request.Tokens(tokens.Count)) is { } limited) return await run.FailAsync(limited);
        // :: Step 4 — route (no rules, screen or cache for embeddings)
        var (route, refused) = router.ResolveEmbedding(key, request);
        if (refused is not null) return await run.FailAsync(refused);
        meter.Routed(route!);
        // :: Step 7 — budget (never a downgrade: another model's vectors would not match the ones already stored)
        var (reservation, overBudget) = await budget.EmbeddingBudgetAsync(key, meter.Day, request, route!, ct);
        run.Reservation = reservation;
        if (overBudget is not null) return await run.FailAsync(overBudget);
        meter.Budgeted(reservation?.LeaseId, null);
        await meter.InFlightAsync();
        // :: Step 8 — call with failover
        var result = await caller.EmbedAsync(meter.RequestId, request, route!, ct);
        run.Attempted(result, route!);
        if (result.Failure is { } failed) return await run.FailAsync(failed.ToGatewayError());
        // :: Step 9 — result; step 10 — meter
        var answer = result.Value!;
        meter.Succeeded(answer.Usage, answer.ServedModel, answer.Text, answer.UsageEstimated);
        bodies.Answer(meter.RequestId, answer);
        await run.FinishingAsync();
        run.Facts.Served(result.Route!.Provider.Name, answer.ServedModel ?? result.Route.UpstreamModel);
        return PipelineResult.Answered(run.Facts, answer.Body);
    }

    /// <summary>The key's per-minute limits (OpenAI's x-ratelimit-* facts); the refusal (429 with Retry-After) when over one.</summary>
    private async ValueTask<GatewayError?> LimitAsync(PipelineRun run, Func<int> tokenCost)
    {
        var (state, refused) = await limiter.TryAcquireAsync(run.Key, tokenCost);
        run.Facts.Limits = state;
        return refused;
    }

    private static async IAsyncEnumerable<StreamEvent> Replay(IReadOnlyList<byte[]> chunks)
    {
        foreach (var chunk in chunks) yield return StreamEvent.Of(chunk);
        await Task.CompletedTask;
    }

    /// <summary>
    /// Relays a primed stream. If it breaks after the client has had tokens (text only, no tool calls yet) and the chain has
    /// candidates left, the answer continues on the next one (<see cref="UpstreamCaller.ContinueStreamAsync"/>: natively where its
    /// protocol can, else with an instruction), and its chunks are spliced in under the same chunk id (its own role chunk dropped,
    /// any repetition of the partial answer removed). Otherwise the stream ends with an error event. A chunk yielded is one the
    /// front door has written to the client by the time the next is asked for.
    /// </summary>
    private async IAsyncEnumerable<StreamEvent> RelayAsync(PipelineRun run, ChatCompletionRequest request, RouteDecision decision,
        FailoverResult<PrimedStream> opened, byte[]? cacheKey, [EnumeratorCancellation] CancellationToken ct)
    {
        var meter = run.Meter;
        var route = opened.Route!;
        var attempts = opened.Attempts.ToList();
        ContinuationSplice? splice = null; // set once the answer continues on another candidate
        string? chunkId = null;
        var toolCallsSent = false;
        var sent = false; // a chunk has reached the client
        (long Created, string? Finish) seen = default; // of a cacheable answer
        GatewayError? ended = null;
        while (true)
        {
            var stream = run.Primed!.Inner;
            Exception? broke = null;
            await using (var chunks = run.Primed.ReadChunksAsync(ct).GetAsyncEnumerator(ct))
            {
                while (true)
                {
                    StreamEvent? next;
                    try
                    {
                        if (!await chunks.MoveNextAsync()) break;
                        next = Relayed(chunks.Current);
                    }
                    catch (Exception ex) when (ex is UpstreamStreamException || !ct.IsCancellationRequested && ex is not OperationCanceledException and not IOException)
                    {
                        broke = ex;
                        break;
                    }
                    if (next is not { } relayed) continue;
                    yield return relayed;
                    sent = true;
                }
            }

            if (broke is null)
            {
                // The answer's text is made a string only where it is read: to estimate usage the provider did not report, or to log it.
                meter.Succeeded(stream.Usage, stream.ServedModel, stream.Usage is null ? stream.Text.ToString() : "");
                if (splice is not null) bodies.Answer(meter.RequestId, splice.ClientText);
                else bodies.Answer(meter.RequestId, stream.Text);
                await run.FinishingAsync();
                // Cached only when the answer came whole from one candidate and said how it ended.
                if (cacheKey is not null && splice is null && chunkId is not null && seen.Finish is { } finish && stream.Usage is { } usage)
                {
                    var body = ResponseCache.CompletionBody(chunkId, seen.Created, stream.ServedModel ?? opened.Route!.UpstreamModel,
                        stream.Text.ToString(), finish, usage);
                    cache.Store(cacheKey, new UpstreamCompletion(body, usage, stream.ServedModel), opened.Route!, run.Key.CacheTtlSeconds!.Value);
                }
                // A passed-through stream's own ending (Anthropic's message_delta and message_stop) goes out only now, after the
                // budget is settled and the row journalled, as the OpenAI door's [DONE] does.
                if (splice is null && !stream.NativeTail.IsEmpty) yield return StreamEvent.Of(default, stream.NativeTail);
                yield break;
            }

            // A capped key's reservation covered one answer: a continuation needs a top-up for the broken attempt and the partial
            // answer sent again as prompt; without room the stream ends with the error.
            // A continuation is asked from the translation: a passed-through request it could not carry (a PDF, a server tool) is
            // not continued, since no candidate would be answering the question the client asked; nor is a passed-through Responses
            // stream, whose output items (reasoning, built-in tool calls) a translated continuation could not go on from.
            if (broke is UpstreamStreamException midStream && sent && !toolCallsSent && midStream.Failure.ShouldFailOver
                && request.Native is not { Untranslated.Count: > 0 }
                && !(request.Native is { Protocol: NativeRequest.OpenAIResponses } responses && responses.PassesThroughTo(route.Provider))
                && Remaining(decision.Chain, route) is { Count: > 0 } remaining
                && (run.Reservation is not { } reservation || reservation.TryTopUp(budget.ContinuationCost(
                    route, stream.Usage, request, splice?.ClientText ?? stream.Text.ToString(), remaining))))
            {
                // The broken candidate's "ok" (it did open) becomes what happened to it; its breakers hear of it.
                await BrokeAsync(attempts, route, midStream.Failure);
                FailoverResult<PrimedStream> next;
                var partial = splice?.ClientText ?? stream.Text.ToString();
                try
                {
                    next = await caller.ContinueStreamAsync(meter.RequestId, request, partial, remaining, RequestBudget.TopUp(run.Reservation), ct);
                }
                catch (Exception bug) when (bug is not OperationCanceledException)
                {
                    Log.ContinuationFailed(log, bug);
                    ended = midStream.Failure.ToGatewayError();
                    meter.Failed(ended, stream.Text.ToString(), stream.Usage);
                    break;
                }
                attempts.AddRange(next.Attempts);
                if (next.Failure is not null)
                {
                    // The row stays on the candidate whose stream broke: its tokens are priced at its prices.
                    meter.Attempted(attempts, decision.First, route, served: false, next.Billed);
                    ended = midStream.Failure.ToGatewayError();
                    meter.Failed(ended, stream.Text.ToString(), stream.Usage);
                    break;
                }
                meter.ContinuedAfter(route, stream.Usage, stream.Text.ToString());
                meter.Attempted(attempts, decision.First, next.Route, served: true, next.Billed);
                await run.Primed.DisposeAsync();
                run.Primed = next.Value!;
                route = next.Route!;
                splice = new ContinuationSplice(partial);
                continue;
            }

            // Once bytes are out the status is 200: the stream ends with an explicit error event, never a silent stop.
            // A stream that failed in a way its reader did not foresee still ends cleanly (and is logged as a bug).
            ended = broke is UpstreamStreamException broken ? broken.Failure.ToGatewayError()
                : GatewayError.UpstreamError(route.Provider.Name, "the stream could not be translated");
            if (broke is not UpstreamStreamException) Log.TranslationFailed(log, broke);
            if (broke is UpstreamStreamException { Failure.ShouldFailOver: true } provider)
            {
                // A break no candidate continues is still the provider's failure: the trail says so and its breakers hear of it.
                await BrokeAsync(attempts, route, provider.Failure);
                meter.Attempted(attempts, decision.First, route, served: false);
            }
            // Nothing reached the client yet (the front door may still answer with a status code), or the stream ends mid-way.
            meter.Failed(ended, stream.Text.ToString(), stream.Usage);
            break;
        }
        await run.FinishingAsync();
        yield return StreamEvent.Failed(ended!);

        // The chunk as the client gets it (with the upstream's own events while no other candidate took over), or null for one it
        // must not see.
        StreamEvent? Relayed(StreamChunk chunk)
        {
            if (chunk.HasContent) meter.FirstToken();
            // The gateway always asks for usage; a client that did not ask does not get the usage chunk.
            if (chunk.IsUsageOnly && !request.ClientWantsStreamUsage) return null;
            var json = chunk.Json;
            if (splice is not null)
            {
                if (Spliced(json, chunkId, chunk.IsUsageOnly ? meter.EarlierTokens : null, splice) is not { } rewritten) return null;
                json = rewritten;
            }
            else
            {
                chunkId ??= IdOf(json);
            }
            toolCallsSent |= chunk.HasToolCall;
            if (cacheKey is not null && splice is null) seen = Seen(json, seen);
            return StreamEvent.Of(json, splice is null ? chunk.Native : default);
        }
    }

    // A mid-stream break: the attempt's outcome in the trail, and the candidate's breakers told.
    private ValueTask BrokeAsync(List<AttemptRecord> attempts, ModelRoute route, UpstreamFailure failure)
    {
        var at = attempts.FindLastIndex(a => a.Provider == route.Provider.Name && a.Model == route.UpstreamModel);
        if (at >= 0) attempts[at] = attempts[at] with { Outcome = failure.Outcome + "_mid_stream" };
        return health.ReportFailureAsync(failure, ProviderHealth.ModelKey(route.Provider.Name, route.UpstreamModel));
    }

    // The chunk's creation time and finish reason, if it has them (only read for cacheable streams).
    private static (long Created, string? Finish) Seen(ReadOnlyMemory<byte> json, (long Created, string? Finish) seen)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        if (seen.Created == 0 && root.TryGetProperty("created", out var created) && created.TryGetInt64(out var at)) seen.Created = at;
        if (root.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array && choices.GetArrayLength() > 0
            && choices[0].TryGetProperty("finish_reason", out var finish) && finish.ValueKind == JsonValueKind.String)
            seen.Finish = finish.GetString();
        return seen;
    }

    /// <summary>The candidates after <paramref name="current"/> in the chain.</summary>
    private static List<ModelRoute> Remaining(IReadOnlyList<ModelRoute> chain, ModelRoute current)
    {
        var at = chain.ToList().FindIndex(c => c.Alias == current.Alias);
        return at < 0 ? [] : [.. chain.Skip(at + 1)];
    }

    private static string? IdOf(ReadOnlyMemory<byte> json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null;
    }

    /// <summary>
    /// A continuation's chunk as the client must see it: the first attempt's id, its text as the splice lets it through, and usage
    /// counting every attempt. Null for a chunk left with nothing to say: the continuation's own opening (role only), which the
    /// client already had, or text held back as a possible repetition of the partial answer.
    /// </summary>
    private static ReadOnlyMemory<byte>? Spliced(ReadOnlyMemory<byte> json, string? id, (int Prompt, int Completion)? earlier, ContinuationSplice splice)
    {
        var node = JsonNode.Parse(json.Span)!.AsObject();
        if (node["choices"] is JsonArray { Count: 1 } choices && choices[0] is JsonObject choice && choice["delta"] is JsonObject delta)
        {
            if (delta["content"] is JsonValue content && content.TryGetValue<string>(out var text))
                delta["content"] = splice.Next(text);
            if (string.IsNullOrEmpty(delta["content"]?.GetValue<string>()) && delta["tool_calls"] is null && choice["finish_reason"] is null
                && node["usage"] is null && delta.All(p => p.Key is "role" or "content" || p.Value is null))
                return null;
            delta.Remove("role"); // the client had the role from the first attempt
        }
        if (id is not null) node["id"] = id;
        if (earlier is { } more && node["usage"] is JsonObject usage)
        {
            var prompt = (usage["prompt_tokens"]?.GetValue<int>() ?? 0) + more.Prompt;
            var completion = (usage["completion_tokens"]?.GetValue<int>() ?? 0) + more.Completion;
            usage["prompt_tokens"] = prompt;
            usage["completion_tokens"] = completion;
            usage["total_tokens"] = prompt + completion;
        }
        return JsonSerializer.SerializeToUtf8Bytes(node, GatewayJsonContext.Wire.JsonObject);
    }

    private static partial class Log
    {
        public static readonly Func<ILogger, string, string, IDisposable?> RequestScope =
            LoggerMessage.DefineScope<string, string>("Request {RequestId} with key {KeyPrefix}");

        [LoggerMessage(EventId = 1710, Level = LogLevel.Error, Message = "Stream translation failed")]
        public static partial void TranslationFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 1711, Level = LogLevel.Error, Message = "Continuing a broken stream failed")]
        public static partial void ContinuationFailed(ILogger logger, Exception exception);
    }
}
