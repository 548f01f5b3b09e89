using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Caching;
using Gateway.Core.Catalog;
using Gateway.Core.Routing;
using Gateway.Api.Auth;
using Gateway.Api.Errors;
using Gateway.Core;
using Gateway.Core.Chat;
using Gateway.Core.Errors;
using Gateway.Core.Failover;
using Gateway.Core.Providers;
using Gateway.Core.Telemetry;
using Gateway.Core.Validation;
using Gateway.Core.Wire;
using Microsoft.Extensions.Options;

namespace Gateway.Api.Endpoints;

/// <summary>The OpenAI-compatible surface: <c>POST /v1/chat/completions</c> and <c>GET /v1/models</c>.</summary>
internal static class ChatCompletionsEndpoints
{
    public const string RequestIdHeader = "x-gateway-request-id";
    public const string ProviderHeader = "x-gateway-provider";
    public const string ModelHeader = "x-gateway-model";
    public const string AttemptsHeader = "x-gateway-attempts";
    public const string FallbackHeader = "x-gateway-fallback";
    public const string RuleHeader = "x-gateway-rule";
    public const string CacheHeader = "x-gateway-cache";
    public const string DowngradedFromHeader = "x-gateway-downgraded-from";
    public const string BudgetRemainingHeader = "x-gateway-budget-remaining";
    public const string InjectionHeader = "x-gateway-injection";

    public static RouteGroupBuilder MapOpenAI(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1").RequireGatewayKey();
        v1.MapPost("/chat/completions", CreateAsync);
        v1.MapPost("/embeddings", EmbeddingsEndpoints.CreateAsync);
        v1.MapGet("/models", (HttpContext http, ChatGateway gateway) =>
            TypedResults.Json(gateway.ListModels(http.GatewayKey()), GatewayJsonContext.Wire.ModelList));
        return v1;
    }

    private static Task CreateAsync(HttpContext http, ChatGateway gateway, ChatRequestParser parser, IOptions<GatewayOptions> options,
        ILogger<MeteredContext> logger, CancellationToken ct) =>
        MeteredRequest.RunAsync(http, http.GatewayKey(), gateway, options, GatewayTelemetry.Chat, logger,
            (context, token) => CompleteAsync(context, gateway, parser, token), ct);

    private static async Task CompleteAsync(MeteredContext context, ChatGateway gateway, ChatRequestParser parser, CancellationToken ct)
    {
        var parsed = parser.Parse(context.Body);
        if (parsed.Failure is { } invalid)
        {
            await context.FailAsync(invalid);
            return;
        }
        var request = parsed.Value!;
        context.Meter.Asked(request);
        BodyLog.Prompt(context.Http, context.Meter.RequestId, request);
        var tokens = context.Http.RequestServices.GetRequiredService<Gateway.Core.Tokens.TokenCounter>();
        // In long: a max_tokens near int.MaxValue must not wrap around to a negative cost that passes any limit.
        if (!await context.WithinRateLimitsAsync(() =>
                (int)Math.Min(int.MaxValue, (long)tokens.CountPrompt(request.Messages!) + (request.MaxCompletionTokens ?? request.MaxTokens ?? 0))))
            return;
        var headers = context.Http.Request.Headers;
        var (decision, refused) = gateway.Route(context.Http.GatewayKey(), request, name => headers.TryGetValue(name, out var value) ? value.ToString() : null);
        if (refused is not null)
        {
            await context.FailAsync(refused);
            return;
        }
        var key = context.Http.GatewayKey();
        // After routing (a rule may set the filter), before the cache and the budget: a blocked request costs nothing.
        if (gateway.Screen(key, request, decision!) is { } verdict)
        {
            context.Meter.InjectionFound(verdict.Categories);
            if (verdict.Refusal is { } blocked)
            {
                context.Meter.Rule(decision!.Rule);
                await context.FailAsync(blocked);
                return;
            }
            context.Http.Response.Headers[InjectionHeader] = "flagged";
        }
        byte[]? cacheKey = null;
        var cache = context.Http.RequestServices.GetRequiredService<ResponseCache>();
        if (key.CacheTtlSeconds is not null && ResponseCache.IsCacheable(request))
        {
            cacheKey = ResponseCache.Key(request, decision!.First, key);
            if (await cache.GetAsync(cacheKey, key, ct) is { } cached)
            {
                // Served without calling a provider: no budget reservation, no cost.
                context.Http.Response.Headers[CacheHeader] = "hit";
                context.Meter.Routed(decision.First);
                context.Meter.Rule(decision.Rule);
                context.Meter.CacheHit(cached.Usage, cached.ServedModel);
                await context.FinishingAsync();
                WriteRouteHeaders(context.Http, cached.Provider, cached.ServedModel ?? decision.First.UpstreamModel);
                if (request.IsStreaming)
                {
                    context.Http.Response.ContentType = "text/event-stream; charset=utf-8";
                    context.Http.Response.Headers.CacheControl = "no-cache";
                    ResponseCache.WriteAsStream(cached.Body, request.ClientWantsStreamUsage, context.Http.Response.BodyWriter);
                    await context.Http.Response.BodyWriter.FlushAsync(ct);
                    return;
                }
                context.Http.Response.ContentType = "application/json";
                context.Http.Response.ContentLength = cached.Body.Length;
                await context.Http.Response.Body.WriteAsync(cached.Body, ct);
                return;
            }
            context.Http.Response.Headers[CacheHeader] = "miss";
        }
        var budget = await gateway.BudgetAsync(key, context.Meter.Day, request, decision!, ct);
        context.Reservation = budget.Reservation;
        if (budget.Remaining is { } remaining)
            context.Http.Response.Headers[BudgetRemainingHeader] = remaining.ToString("0.######", System.Globalization.CultureInfo.InvariantCulture);
        if (budget.Refused is { } overCap)
        {
            await context.FailAsync(overCap);
            return;
        }
        decision = budget.Decision;
        if (budget.DowngradedFrom is { } original)
        {
            context.Http.Response.Headers[DowngradedFromHeader] = original;
            // The cheaper model's answer is this key's budget talking, not the asked model's answer: stored under the asked
            // model it would be served to every key sharing the entry, within budget or not (and allowed that model or not).
            cacheKey = null;
        }
        context.Meter.Budgeted(budget.Reservation?.LeaseId, budget.DowngradedFrom);
        var route = decision.First;
        context.Meter.Routed(route);
        context.Meter.Rule(decision.Rule);
        if (decision.Rule is { } rule) context.Http.Response.Headers[RuleHeader] = rule;
        await context.Meter.InFlightAsync(); // from here on a provider may bill: a kill -9 still leaves this request's row

        if (!request.IsStreaming)
        {
            // A capped key's reservation covered one answer: a call after a billed one needs a top-up first.
            var result = await gateway.CompleteAsync(context.Meter.RequestId, request, decision.Chain, ChatGateway.TopUp(context.Reservation), ct,
                (candidate, stream) => context.Assembling = stream is null ? null : (candidate, stream));
            context.Attempted(result, route!);
            if (result.Failure is { } failed)
            {
                await context.FailAsync(failed);
                return;
            }
            await context.WriteAsync(result.Value!, result.Route!.Provider.Name, result.Route.UpstreamModel, ct);
            // Cached under the model that was asked for (a fallback's answer too: it is what that request gets).
            if (cacheKey is not null && result.Value!.Usage is not null) cache.Store(cacheKey, result.Value, result.Route, key.CacheTtlSeconds!.Value);
            return;
        }

        var opened = await gateway.OpenStreamAsync(context.Meter.RequestId, request, decision.Chain, ChatGateway.TopUp(context.Reservation), ct);
        context.Attempted(opened, route!);
        if (opened.Failure is { } notOpened)
        {
            await context.FailAsync(notOpened);
            return;
        }
        context.Primed = opened.Value!;
        WriteRouteHeaders(context.Http, opened.Route!.Provider.Name, opened.Route.UpstreamModel);
        var whole = await StreamAsync(context, gateway, request, decision, opened, cacheKey is not null, ct);
        if (cacheKey is not null && whole is { } answer && context.Stream is { Usage: { } usage } stream)
        {
            var body = ResponseCache.CompletionBody(answer.Id, answer.Created, stream.ServedModel ?? opened.Route.UpstreamModel,
                stream.Text.ToString(), answer.FinishReason, usage);
            cache.Store(cacheKey, new UpstreamCompletion(body, usage, stream.ServedModel), context.Stream == stream ? opened.Route : route,
                key.CacheTtlSeconds!.Value);
        }
    }

    /// <summary>What a stream that ended cleanly on its first candidate said of itself, for caching it.</summary>
    private readonly record struct StreamedAnswer(string Id, long Created, string FinishReason);

    /// <summary>
    /// Relays a primed stream. If it breaks after the client has had tokens (text only, no tool calls yet)
    /// and the chain has candidates left, the answer continues on the next one (<see cref="ChatGateway.ContinueStreamAsync"/>:
    /// natively where its protocol can, else with an instruction), and its chunks are spliced in under the same chunk id (its own
    /// role chunk dropped, any repetition of the partial answer removed). Otherwise the stream ends with an OpenAI error event and [DONE].
    /// </summary>
    /// <returns>For a <paramref name="cacheable"/> request, its id, creation time and finish reason when the answer came whole from
    /// one candidate; otherwise null.</returns>
    private static async Task<StreamedAnswer?> StreamAsync(MeteredContext context, ChatGateway gateway, ChatCompletionRequest request,
        RouteDecision decision, FailoverResult<PrimedStream> opened, bool cacheable, CancellationToken ct)
    {
        var http = context.Http;
        var meter = context.Meter;
        http.Response.ContentType = "text/event-stream; charset=utf-8";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no";
        var output = http.Response.BodyWriter;
        var route = opened.Route!;
        var attempts = opened.Attempts.ToList();
        ContinuationSplice? splice = null; // set once the answer continues on another candidate
        string? chunkId = null;
        var toolCallsSent = false;
        (long Created, string? Finish) seen = default;
        while (true)
        {
            var stream = context.Primed!.Inner;
            try
            {
                await foreach (var chunk in context.Primed.ReadChunksAsync(ct))
                {
                    if (chunk.HasContent) meter.FirstToken();
                    // The gateway always asks for usage; a client that did not ask does not get the usage chunk.
                    if (chunk.IsUsageOnly && !request.ClientWantsStreamUsage) continue;
                    var json = chunk.Json;
                    if (splice is not null)
                    {
                        if (Spliced(json, chunkId, chunk.IsUsageOnly ? meter.EarlierTokens : null, splice) is not { } rewritten) continue;
                        json = rewritten;
                    }
                    else
                    {
                        chunkId ??= IdOf(json);
                    }
                    toolCallsSent |= chunk.HasToolCall;
                    if (cacheable && splice is null) seen = Seen(json, seen);
                    output.Write("data: "u8);
                    output.Write(json.Span);
                    output.Write("\n\n"u8);
                    await output.FlushAsync(ct);
                }
                meter.Succeeded(stream.Usage, stream.ServedModel, stream.Text.ToString());
                BodyLog.Answer(http, meter.RequestId, splice?.ClientText ?? stream.Text.ToString());
                await context.FinishingAsync();
                output.Write("data: [DONE]\n\n"u8);
                await output.FlushAsync(ct);
                return splice is null && chunkId is not null && seen.Finish is { } finish ? new StreamedAnswer(chunkId, seen.Created, finish) : null;
            }
            // A capped key's reservation covered one answer: a continuation needs a top-up for the broken attempt and the partial
            // answer sent again as prompt; without room the stream ends with the error.
            catch (UpstreamStreamException ex) when (http.Response.HasStarted && !toolCallsSent && ex.Failure.ShouldFailOver
                                                     && Remaining(decision.Chain, route) is { Count: > 0 } remaining
                                                     && (context.Reservation is not { } reservation || reservation.TryTopUp(gateway.ContinuationCost(
                                                         route, stream.Usage, request, splice?.ClientText ?? stream.Text.ToString(), remaining))))
            {
                // The broken candidate's "ok" (it did open) becomes what happened to it; its breakers hear of it.
                var at = attempts.FindLastIndex(a => a.Provider == route.Provider.Name && a.Model == route.UpstreamModel);
                if (at >= 0) attempts[at] = attempts[at] with { Outcome = ex.Failure.Outcome + "_mid_stream" };
                var health = http.RequestServices.GetRequiredService<ProviderHealth>();
                await health.ReportFailureAsync(ex.Failure, ProviderHealth.ModelKey(route.Provider.Name, route.UpstreamModel));
                FailoverResult<PrimedStream> next;
                var partial = splice?.ClientText ?? stream.Text.ToString();
                try
                {
                    next = await gateway.ContinueStreamAsync(meter.RequestId, request, partial, remaining, ChatGateway.TopUp(context.Reservation), ct);
                }
                catch (Exception bug) when (bug is not OperationCanceledException)
                {
                    http.RequestServices.GetRequiredService<ILogger<StreamLog>>().LogError(bug, "Continuing a broken stream failed");
                    await EndWithErrorAsync(http, meter, stream, ex.Failure.ToGatewayError(), ct);
                    break;
                }
                attempts.AddRange(next.Attempts);
                if (next.Failure is not null)
                {
                    meter.Attempted(attempts, decision.First, route, served: false, next.Billed);
                    await EndWithErrorAsync(http, meter, stream, ex.Failure.ToGatewayError(), ct);
                    break;
                }
                meter.ContinuedAfter(route, stream.Usage, stream.Text.ToString());
                meter.Attempted(attempts, decision.First, next.Route, served: true, next.Billed);
                await context.Primed.DisposeAsync();
                context.Primed = next.Value!;
                route = next.Route!;
                splice = new ContinuationSplice(partial);
            }
            catch (Exception ex) when (ex is UpstreamStreamException || !ct.IsCancellationRequested && ex is not OperationCanceledException and not IOException)
            {
                // Once bytes are out the status is 200: end with an explicit error event, never a silent stop.
                // A stream that failed in a way its reader did not foresee still ends cleanly (and is logged as a bug).
                var error = ex is UpstreamStreamException broken ? broken.Failure.ToGatewayError()
                    : GatewayError.UpstreamError(route.Provider.Name, "the stream could not be translated");
                if (ex is not UpstreamStreamException)
                    http.RequestServices.GetRequiredService<ILogger<StreamLog>>().LogError(ex, "Stream translation failed");
                if (ex is UpstreamStreamException { Failure.ShouldFailOver: true } provider)
                {
                    // A break no candidate continues is still the provider's failure: the trail says so and its breakers hear of it.
                    var at = attempts.FindLastIndex(a => a.Provider == route.Provider.Name && a.Model == route.UpstreamModel);
                    if (at >= 0) attempts[at] = attempts[at] with { Outcome = provider.Failure.Outcome + "_mid_stream" };
                    meter.Attempted(attempts, decision.First, route, served: false);
                    var health = http.RequestServices.GetRequiredService<ProviderHealth>();
                    await health.ReportFailureAsync(provider.Failure, ProviderHealth.ModelKey(route.Provider.Name, route.UpstreamModel));
                }
                if (!http.Response.HasStarted)
                {
                    // Nothing reached the client yet: it still gets a real status code.
                    meter.Failed(error, stream.Text.ToString(), stream.Usage);
                    await context.FinishingAsync();
                    http.Response.Headers.CacheControl = default;
                    await OpenAIResults.WriteAsync(http, error);
                    return null;
                }
                await EndWithErrorAsync(http, meter, stream, error, ct);
                break;
            }
        }
        await context.FinishingAsync();
        output.Write("data: [DONE]\n\n"u8);
        await output.FlushAsync(ct);
        return null;
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

    private static Task EndWithErrorAsync(HttpContext http, RequestMeter meter, UpstreamStream stream, GatewayError error, CancellationToken ct)
    {
        meter.Failed(error, stream.Text.ToString(), stream.Usage);
        var output = http.Response.BodyWriter;
        output.Write("data: "u8);
        output.Write(JsonSerializer.SerializeToUtf8Bytes(error.ToBody(), GatewayJsonContext.Wire.OpenAIErrorBody));
        output.Write("\n\n"u8);
        return Task.CompletedTask;
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

    internal static void WriteRouteHeaders(HttpContext http, string provider, string model)
    {
        http.Response.Headers[ProviderHeader] = provider;
        http.Response.Headers[ModelHeader] = model;
    }
}

/// <summary>Log category for stream translation failures.</summary>
internal sealed class StreamLog;
