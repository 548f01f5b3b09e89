using Gateway.Api.Errors;
using Gateway.Core;
using Gateway.Core.Catalog;
using Gateway.Core.Chat;
using Gateway.Core.Errors;
using Gateway.Core.Failover;
using Gateway.Core.Limits;
using Gateway.Api.Auth;
using Gateway.Core.Keys;
using Gateway.Core.Providers;
using Gateway.Core.Telemetry;
using Microsoft.Extensions.Options;

namespace Gateway.Api.Endpoints;

/// <summary>One metered proxy request while it is handled: the meter, the body, and the stream if one opened.</summary>
internal sealed class MeteredContext(HttpContext http, RequestMeter meter, byte[] body)
{
    public HttpContext Http { get; } = http;
    public RequestMeter Meter { get; } = meter;
    public byte[] Body { get; } = body;
    /// <summary>The stream being relayed, held back until its first token (disposed with the request).</summary>
    public PrimedStream? Primed { get; set; }

    public UpstreamStream? Stream => Primed?.Inner;

    /// <summary>The candidate whose stream is being assembled into a non-streaming answer, while it is read.</summary>
    public (ModelRoute Route, UpstreamStream Stream)? Assembling { get; set; }

    /// <summary>The budget reservation to settle with the request's real cost once it is metered.</summary>
    public Gateway.Core.Budgets.Reservation? Reservation { get; set; }

    /// <summary>
    /// Settles the reservation at the request's cost as metered so far (once; later calls do nothing). Called as soon as
    /// the cost is known, before the answer's last bytes go out, so the key's next request already sees it spent.
    /// </summary>
    public void SettleBudget()
    {
        if (Reservation is not { } reservation) return;
        Reservation = null;
        reservation.Settle(Meter.BudgetCost);
    }

    /// <summary>
    /// The answer is decided and its last bytes are about to go out: settle the budget and journal the usage record, so
    /// neither a crash nor a database outage after this point can lose what the client is being given.
    /// </summary>
    public ValueTask FinishingAsync()
    {
        SettleBudget();
        return Meter.CheckpointAsync();
    }

    /// <summary>
    /// Applies the key's per-minute request and token limits (OpenAI's x-ratelimit-* headers on the
    /// answer); false when the request was refused with 429 and Retry-After.
    /// </summary>
    public async Task<bool> WithinRateLimitsAsync(Func<int> tokens)
    {
        var (state, refused) = Http.RequestServices.GetRequiredService<KeyRateLimiter>().TryAcquire(Http.GatewayKey(), tokens);
        var headers = Http.Response.Headers;
        if (state.RequestLimit is { } rpm) headers["x-ratelimit-limit-requests"] = rpm.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (state.RequestsRemaining is { } requestsLeft) headers["x-ratelimit-remaining-requests"] = requestsLeft.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (state.TokenLimit is { } tpm) headers["x-ratelimit-limit-tokens"] = tpm.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (state.TokensRemaining is { } tokensLeft) headers["x-ratelimit-remaining-tokens"] = tokensLeft.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (refused is null) return true;
        await FailAsync(refused);
        return false;
    }

    /// <summary>Writes the failover headers and records the attempts.</summary>
    public void Attempted<T>(FailoverResult<T> result, ModelRoute first) where T : class
    {
        Meter.Attempted(result.Attempts, first, result.Route, result.Failure is null, result.Billed);
        Http.Response.Headers[ChatCompletionsEndpoints.AttemptsHeader] = result.Calls.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Http.Response.Headers[ChatCompletionsEndpoints.FallbackHeader] =
            result.Failure is null && result.Route is { } served && served.Alias != first.Alias ? "true" : "false";
    }

    /// <summary>Answers an error in OpenAI's shape and records it.</summary>
    public async Task FailAsync(GatewayError error)
    {
        Meter.Failed(error);
        await FinishingAsync();
        await OpenAIResults.WriteAsync(Http, error);
    }

    /// <summary>Answers the failure of a candidate chain (usage its attempts reported was charged by <see cref="Attempted"/>).</summary>
    public Task FailAsync(UpstreamFailure failure) => FailAsync(failure.ToGatewayError());

    /// <summary>Writes a complete (non-streamed) answer and records its usage.</summary>
    public async Task WriteAsync(UpstreamCompletion completion, string provider, string model, CancellationToken ct)
    {
        Meter.Succeeded(completion.Usage, completion.ServedModel, completion.Text, completion.UsageEstimated);
        BodyLog.Answer(Http, Meter.RequestId, completion);
        await FinishingAsync();
        ChatCompletionsEndpoints.WriteRouteHeaders(Http, provider, completion.ServedModel ?? model);
        Http.Response.ContentType = "application/json";
        Http.Response.ContentLength = completion.Body.Length;
        await Http.Response.Body.WriteAsync(completion.Body, ct);
    }
}

/// <summary>
/// The frame every metered /v1 request runs in: a usage record is started before anything else and
/// published exactly once in <c>finally</c>, whatever happens (bad body, upstream failure, client gone, bug).
/// The request has its span (under ASP.NET Core's) and a logging scope, so every log line written while it is
/// handled carries its <c>RequestId</c> and the key's <c>KeyPrefix</c>.
/// </summary>
internal static class MeteredRequest
{
    /// <param name="operation"><see cref="GatewayTelemetry.Chat"/> or <see cref="GatewayTelemetry.Embeddings"/>.</param>
    public static async Task RunAsync(HttpContext http, GatewayKey key, ChatGateway gateway, IOptions<GatewayOptions> options, string operation,
        ILogger logger, Func<MeteredContext, CancellationToken, Task> handle, CancellationToken ct)
    {
        var meter = gateway.StartMeter(key, operation);
        var requestId = meter.RequestId.ToString();
        using var span = GatewayTelemetry.StartRequest(operation, requestId);
        using var scope = Log.RequestScope(logger, requestId, key.Prefix);
        // Set when the response starts, so it survives the exception handler clearing headers for a 500.
        http.Response.OnStarting(() =>
        {
            http.Response.Headers[ChatCompletionsEndpoints.RequestIdHeader] = requestId;
            return Task.CompletedTask;
        });
        MeteredContext? context = null;
        try
        {
            var (body, tooLarge) = await RequestBody.ReadAsync(http.Request, options.Value.MaxRequestBodyBytes, ct);
            context = new MeteredContext(http, meter, body ?? []);
            if (tooLarge is not null)
            {
                await context.FailAsync(tooLarge);
                return;
            }
            await handle(context, ct);
        }
        catch (Exception ex) when (IsClientGone(http, ex))
        {
            // Charged what the provider had produced: of the stream relayed, or of the one being assembled (at that candidate's prices).
            if (context?.Stream is null && context?.Assembling is var (route, assembling))
            {
                meter.Routed(route);
                meter.ClientDisconnected(assembling.Text.ToString(), assembling.Usage);
            }
            else
            {
                meter.ClientDisconnected(context?.Stream?.Text.ToString() ?? "", context?.Stream?.Usage);
            }
        }
        catch (BadHttpRequestException ex)
        {
            // The client's HTTP itself was broken (bad chunked encoding, a body slower than Gateway:Server's minimum rate):
            // its fault, not a crash.
            var error = ex.StatusCode == StatusCodes.Status408RequestTimeout
                ? new GatewayError(408, "The request body arrived too slowly; the gateway stopped waiting for it.", "invalid_request_error", null, "request_timeout")
                : new GatewayError(ex.StatusCode, "The request body could not be read.", "invalid_request_error", null, "bad_request");
            meter.Failed(error);
            if (!http.Response.HasStarted) await OpenAIResults.WriteAsync(http, error);
        }
        catch
        {
            meter.Crashed();
            throw;
        }
        finally
        {
            try
            {
                if (context?.Primed is { } primed) await primed.DisposeAsync();
            }
            finally
            {
                try
                {
                    meter.Describe(span);
                    await meter.PublishAsync();
                }
                finally
                {
                    context?.SettleBudget();
                }
            }
        }
    }

    private static bool IsClientGone(HttpContext http, Exception ex) =>
        http.RequestAborted.IsCancellationRequested && ex is OperationCanceledException or IOException
        || ex is Microsoft.AspNetCore.Connections.ConnectionResetException;

    private static class Log
    {
        // The key's prefix is the 11 characters shown in the admin app, never the key itself.
        public static readonly Func<ILogger, string, string, IDisposable?> RequestScope =
            LoggerMessage.DefineScope<string, string>("Request {RequestId} with key {KeyPrefix}");
    }
}
