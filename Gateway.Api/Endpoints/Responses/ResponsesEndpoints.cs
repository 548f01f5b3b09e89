using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Api.Auth;
using Gateway.Api.Errors;
using Gateway.Core;
using Gateway.Core.Errors;
using Gateway.Core.Pipeline;
using Gateway.Core.Responses;
using Gateway.Core.Telemetry;
using Gateway.Core.Validation;
using Gateway.Core.Wire;
using Microsoft.Extensions.Options;

namespace Gateway.Api.Endpoints.Responses;

/// <summary>
/// The OpenAI Responses front door: <c>POST /v1/responses</c> translates a Responses request into the pipeline's canonical request
/// (<see cref="ResponsesRequest"/>), runs <see cref="ChatPipeline"/> and writes the result as a response object or the Responses
/// event stream (<see cref="ResponsesResult"/>). With <c>store</c> (OpenAI's default: true) the response and its conversation are
/// stored for the key (<see cref="ResponseStore"/>) before the client gets it whole, so <c>previous_response_id</c> continues it and
/// <c>GET</c>/<c>DELETE /v1/responses/{id}</c> find it at once; another key's response is a 404.
/// </summary>
internal static partial class ResponsesEndpoints
{
    public static RouteGroupBuilder MapResponses(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1/responses").RequireGatewayKey();
        v1.MapPost("", CreateAsync);
        v1.MapGet("/{id}", GetAsync);
        v1.MapDelete("/{id}", DeleteAsync);
        return v1;
    }

    private static Task CreateAsync(HttpContext http, ChatPipeline pipeline, ChatRequestParser parser, ResponseStore store, TimeProvider time,
        IOptions<GatewayOptions> options, ILogger<ResponseStore> log, CancellationToken ct) =>
        FrontDoor.RunAsync(http, pipeline, options.Value.MaxRequestBodyBytes, GatewayTelemetry.Chat, FrontDoorNames.OpenAIResponses, OpenAIResults.WriteAsync, async (run, body) =>
        {
            var (request, failure) = ResponsesRequest.Read(body);
            JsonArray? previous = null;
            // The one database read before the call, and only for a request that continues a stored response.
            if (request?.PreviousResponseId is { } previousId)
            {
                if (await store.GetAsync(previousId, run.Key.Id, ct) is { } stored) previous = JsonNode.Parse(stored.Items) as JsonArray;
                else failure = new GatewayError(400, $"Previous response with id '{previousId}' not found.", "invalid_request_error",
                    "previous_response_id", "previous_response_not_found");
            }
            var translated = failure is null ? ResponsesRequest.Translate(request!.Body, previous) : default;
            failure ??= translated.Failure;
            var parsed = failure is null ? parser.Parse(translated.Value!.Canonical) : new ParseResult(null, failure);
            if (parsed.Value is { } canonical) canonical.Native = translated.Value!.Native;
            var headers = http.Request.Headers;
            var result = await pipeline.ChatAsync(run, parsed, name => headers.TryGetValue(name, out var value) ? value.ToString() : null, ct);

            // The usage row's id is the response's: a stored response and its usage row are found by one another.
            var shape = new ResponseShape("resp_" + run.RequestId.ToString("N"), time.GetUtcNow().ToUnixTimeSeconds(), request?.Body ?? []);
            Func<JsonObject, bool, Task>? save = request is { Store: true } && translated.Value is { } conversation
                ? async (response, passedThrough) =>
                {
                    var items = (JsonArray)conversation.Conversation.DeepClone();
                    if (response["output"] is JsonArray output) ResponsesRequest.AppendOutput(items, output, passedThrough);
                    try
                    {
                        await store.SaveAsync(shape.Id, run.Key.Id, items.ToJsonString(), response.ToJsonString(), ct);
                    }
                    catch (Exception ex) when (ex is Npgsql.NpgsqlException or TimeoutException)
                    {
                        // The answer is paid for: the client still gets it; only its later retrieval fails (404).
                        Log.StoreFailed(log, ex, shape.Id);
                    }
                }
                : null;
            await ResponsesResult.WriteAsync(http, result, shape, save, ct);
        }, ct);

    private static async Task<IResult> GetAsync(string id, HttpContext http, ResponseStore store, CancellationToken ct) =>
        await store.GetAsync(id, http.GatewayKey().Id, ct) is { } stored
            ? TypedResults.Text(stored.Response, "application/json")
            : OpenAIResults.Error(NotFound(id));

    private static async Task<IResult> DeleteAsync(string id, HttpContext http, ResponseStore store, CancellationToken ct) =>
        await store.DeleteAsync(id, http.GatewayKey().Id, ct)
            ? TypedResults.Json(new JsonObject { ["id"] = id, ["object"] = "response", ["deleted"] = true }, GatewayJsonContext.Wire.JsonObject)
            : OpenAIResults.Error(NotFound(id));

    // Another key's response is as absent as one never made: its id tells the caller nothing.
    private static GatewayError NotFound(string id) =>
        new(404, $"Response with id '{id}' not found.", "invalid_request_error", null, "not_found");

    private static partial class Log
    {
        [LoggerMessage(EventId = 1921, Level = LogLevel.Error, Message = "Storing response {ResponseId} failed; the client got it unstored")]
        public static partial void StoreFailed(ILogger logger, Exception exception, string responseId);
    }
}
