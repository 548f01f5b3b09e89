using Gateway.Api.Auth;
using Gateway.Core;
using Gateway.Core.Chat;
using Gateway.Core.Providers;
using Gateway.Core.Telemetry;
using Gateway.Core.Validation;
using Microsoft.Extensions.Options;

namespace Gateway.Api.Endpoints;

/// <summary><c>POST /v1/embeddings</c>: OpenAI-compatible, Gemini and mock models; metered like chat.</summary>
internal static class EmbeddingsEndpoints
{
    public static Task CreateAsync(HttpContext http, ChatGateway gateway, EmbeddingRequestParser parser, IOptions<GatewayOptions> options,
        ILogger<MeteredContext> logger, CancellationToken ct) =>
        MeteredRequest.RunAsync(http, http.GatewayKey(), gateway, options, GatewayTelemetry.Embeddings, logger,
            (context, token) => EmbedAsync(context, gateway, parser, token), ct);

    private static async Task EmbedAsync(MeteredContext context, ChatGateway gateway, EmbeddingRequestParser parser, CancellationToken ct)
    {
        var (request, invalid) = parser.Parse(context.Body);
        if (invalid is not null)
        {
            await context.FailAsync(invalid);
            return;
        }
        context.Meter.Asked(request!);
        var tokens = context.Http.RequestServices.GetRequiredService<Gateway.Core.Tokens.TokenCounter>();
        if (!await context.WithinRateLimitsAsync(() => request!.Tokens(tokens.Count)))
            return;
        var (route, refused) = gateway.ResolveEmbedding(context.Http.GatewayKey(), request!);
        if (refused is not null)
        {
            await context.FailAsync(refused);
            return;
        }
        context.Meter.Routed(route!);
        var budget = await gateway.EmbeddingBudgetAsync(context.Http.GatewayKey(), context.Meter.Day, request!, route!, ct);
        context.Reservation = budget.Reservation;
        if (budget.Refused is { } overBudget)
        {
            await context.FailAsync(overBudget);
            return;
        }
        context.Meter.Budgeted(budget.Reservation?.LeaseId, null);
        await context.Meter.InFlightAsync();
        var result = await gateway.EmbedAsync(context.Meter.RequestId, request!, route!, ct);
        context.Attempted(result, route!);
        if (result.Failure is { } failed) await context.FailAsync(failed);
        else await context.WriteAsync(result.Value!, result.Route!.Provider.Name, result.Route.UpstreamModel, ct);
    }
}
