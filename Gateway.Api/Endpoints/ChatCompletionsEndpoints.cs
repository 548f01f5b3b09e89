using Gateway.Api.Auth;
using Gateway.Api.Errors;
using Gateway.Core;
using Gateway.Core.Pipeline;
using Gateway.Core.Routing;
using Gateway.Core.Telemetry;
using Gateway.Core.Validation;
using Gateway.Core.Wire;
using Microsoft.Extensions.Options;

namespace Gateway.Api.Endpoints;

/// <summary>
/// The OpenAI front door: <c>POST /v1/chat/completions</c> and <c>POST /v1/embeddings</c> parse OpenAI's wire format into the
/// pipeline's canonical request, run <see cref="ChatPipeline"/>, and write its result back in OpenAI's format; <c>GET /v1/models</c>.
/// </summary>
internal static class ChatCompletionsEndpoints
{
    public static RouteGroupBuilder MapOpenAI(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1").RequireGatewayKey();
        v1.MapPost("/chat/completions", CreateAsync);
        v1.MapPost("/embeddings", EmbedAsync);
        v1.MapGet("/models", (HttpContext http, ChatRouter router) =>
            TypedResults.Json(router.ListModels(http.GatewayKey()), GatewayJsonContext.Wire.ModelList));
        return v1;
    }

    private static Task CreateAsync(HttpContext http, ChatPipeline pipeline, ChatRequestParser parser, IOptions<GatewayOptions> options,
        CancellationToken ct) =>
        FrontDoor.RunAsync(http, pipeline, options.Value.MaxRequestBodyBytes, GatewayTelemetry.Chat, FrontDoorNames.OpenAIChat, OpenAIResults.WriteAsync, async (run, body) =>
        {
            var headers = http.Request.Headers;
            var result = await pipeline.ChatAsync(run, parser.Parse(body),
                name => headers.TryGetValue(name, out var value) ? value.ToString() : null, ct);
            await OpenAIResponses.WriteAsync(http, result, ct);
        }, ct);

    private static Task EmbedAsync(HttpContext http, ChatPipeline pipeline, EmbeddingRequestParser parser, IOptions<GatewayOptions> options,
        CancellationToken ct) =>
        FrontDoor.RunAsync(http, pipeline, options.Value.MaxRequestBodyBytes, GatewayTelemetry.Embeddings, FrontDoorNames.OpenAIEmbeddings, OpenAIResults.WriteAsync,
            async (run, body) => await OpenAIResponses.WriteAsync(http, await pipeline.EmbedAsync(run, parser.Parse(body), ct), ct), ct);
}
