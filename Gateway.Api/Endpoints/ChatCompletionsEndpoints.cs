using System.Buffers;
using System.Text.Json;
using Gateway.Api.Auth;
using Gateway.Api.Errors;
using Gateway.Core;
using Gateway.Core.Chat;
using Gateway.Core.Errors;
using Gateway.Core.Failover;
using Gateway.Core.Providers;
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

    public static RouteGroupBuilder MapOpenAI(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1").RequireGatewayKey();
        v1.MapPost("/chat/completions", CreateAsync);
        v1.MapPost("/embeddings", EmbeddingsEndpoints.CreateAsync);
        v1.MapGet("/models", (HttpContext http, ChatGateway gateway) =>
            TypedResults.Json(gateway.ListModels(http.GatewayKey()), GatewayJsonContext.Wire.ModelList));
        return v1;
    }

    private static Task CreateAsync(HttpContext http, ChatGateway gateway, IOptions<GatewayOptions> options, CancellationToken ct) =>
        MeteredRequest.RunAsync(http, http.GatewayKey(), gateway, options, (context, token) => CompleteAsync(context, gateway, token), ct);

    private static async Task CompleteAsync(MeteredContext context, ChatGateway gateway, CancellationToken ct)
    {
        var parsed = ChatRequestParser.Parse(context.Body);
        if (parsed.Failure is { } invalid)
        {
            await context.FailAsync(invalid);
            return;
        }
        var request = parsed.Value!;
        context.Meter.Asked(request);
        var headers = context.Http.Request.Headers;
        var (decision, refused) = gateway.Route(context.Http.GatewayKey(), request, name => headers.TryGetValue(name, out var value) ? value.ToString() : null);
        if (refused is not null)
        {
            await context.FailAsync(refused);
            return;
        }
        var route = decision!.First;
        context.Meter.Routed(route);
        context.Meter.Rule(decision.Rule);
        if (decision.Rule is { } rule) context.Http.Response.Headers[RuleHeader] = rule;

        if (!request.IsStreaming)
        {
            var result = await gateway.CompleteAsync(context.Meter.RequestId, request, decision.Chain, ct);
            context.Attempted(result, route!);
            if (result.Failure is { } failed) await context.FailAsync(failed);
            else await context.WriteAsync(result.Value!, result.Route!.Provider.Name, result.Route.UpstreamModel, ct);
            return;
        }

        var opened = await gateway.OpenStreamAsync(context.Meter.RequestId, request, decision.Chain, ct);
        context.Attempted(opened, route!);
        if (opened.Failure is { } notOpened)
        {
            await context.FailAsync(notOpened);
            return;
        }
        context.Primed = opened.Value!;
        WriteRouteHeaders(context.Http, opened.Route!.Provider.Name, opened.Route.UpstreamModel);
        await StreamAsync(context.Http, context.Meter, context.Primed, request.ClientWantsStreamUsage, ct);
    }

    private static async Task StreamAsync(HttpContext http, RequestMeter meter, PrimedStream primed, bool clientWantsUsage, CancellationToken ct)
    {
        var stream = primed.Inner;
        http.Response.ContentType = "text/event-stream; charset=utf-8";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no";
        var output = http.Response.BodyWriter;
        try
        {
            await foreach (var chunk in primed.ReadChunksAsync(ct))
            {
                if (chunk.HasContent) meter.FirstToken();
                // The gateway always asks for usage; a client that did not ask does not get the usage chunk.
                if (chunk.IsUsageOnly && !clientWantsUsage) continue;
                output.Write("data: "u8);
                output.Write(chunk.Json.Span);
                output.Write("\n\n"u8);
                await output.FlushAsync(ct);
            }
            meter.Succeeded(stream.Usage, stream.ServedModel, stream.Text.ToString());
        }
        catch (Exception ex) when (ex is UpstreamStreamException || !ct.IsCancellationRequested && ex is not OperationCanceledException and not IOException)
        {
            // Once bytes are out the status is 200: end with an explicit error event, never a silent stop.
            // A stream that failed in a way its reader did not foresee still ends cleanly (and is logged as a bug).
            var error = ex is UpstreamStreamException broken ? broken.Failure.ToGatewayError()
                : GatewayError.UpstreamError(http.Response.Headers[ProviderHeader].ToString(), "the stream could not be translated");
            if (ex is not UpstreamStreamException)
                http.RequestServices.GetRequiredService<ILogger<StreamLog>>().LogError(ex, "Stream translation failed");
            meter.Failed(error, stream.Text.ToString(), stream.Usage);
            if (!http.Response.HasStarted)
            {
                // Nothing reached the client yet: it still gets a real status code.
                http.Response.Headers.CacheControl = default;
                await OpenAIResults.WriteAsync(http, error);
                return;
            }
            output.Write("data: "u8);
            output.Write(JsonSerializer.SerializeToUtf8Bytes(error.ToBody(), GatewayJsonContext.Wire.OpenAIErrorBody));
            output.Write("\n\n"u8);
        }
        output.Write("data: [DONE]\n\n"u8);
        await output.FlushAsync(ct);
    }

    internal static void WriteRouteHeaders(HttpContext http, string provider, string model)
    {
        http.Response.Headers[ProviderHeader] = provider;
        http.Response.Headers[ModelHeader] = model;
    }
}

/// <summary>Log category for stream translation failures.</summary>
internal sealed class StreamLog;
