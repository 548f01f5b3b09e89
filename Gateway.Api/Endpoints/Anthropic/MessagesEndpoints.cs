using System.Text.Json.Nodes;
using Gateway.Api.Auth;
using Gateway.Api.Errors;
using Gateway.Core;
using Gateway.Core.Pipeline;
using Gateway.Core.Providers.Anthropic;
using Gateway.Core.Routing;
using Gateway.Core.Telemetry;
using Gateway.Core.Tokens;
using Gateway.Core.Validation;
using Gateway.Core.Wire;
using Microsoft.Extensions.Options;

namespace Gateway.Api.Endpoints.Anthropic;

/// <summary>
/// The Anthropic front door: <c>POST /v1/messages</c> translates Anthropic's Messages request into the pipeline's canonical
/// request (<see cref="MessagesRequest"/>), runs <see cref="ChatPipeline"/> and writes the result as Anthropic's message or event
/// stream (<see cref="MessagesResponses"/>); <c>POST /v1/messages/count_tokens</c> counts a request's input. Keys come as
/// <c>x-api-key</c> (Anthropic's clients) or <c>Authorization: Bearer</c>; errors are in Anthropic's shape.
/// </summary>
internal static class MessagesEndpoints
{
    public static RouteGroupBuilder MapAnthropic(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1/messages").RequireGatewayKey(AnthropicResults.Error, apiKeyHeader: true);
        v1.MapPost("", CreateAsync);
        v1.MapPost("/count_tokens", CountTokensAsync);
        return v1;
    }

    private static Task CreateAsync(HttpContext http, ChatPipeline pipeline, ChatRequestParser parser, TokenCounter tokens,
        IOptions<GatewayOptions> options, CancellationToken ct) =>
        FrontDoor.RunAsync(http, pipeline, options.Value.MaxRequestBodyBytes, GatewayTelemetry.Chat, FrontDoorNames.AnthropicMessages, AnthropicResults.WriteAsync, async (run, body) =>
        {
            var headers = http.Request.Headers;
            var (canonical, native, untranslatable) = MessagesRequest.Translate(body, headers.TryGetValue("anthropic-beta", out var beta) ? beta.ToString() : null);
            var parsed = untranslatable is null ? parser.Parse(canonical) : new ParseResult(null, untranslatable);
            // Anthropic upstreams get the client's own request (and its anthropic-beta), every other protocol the translation.
            if (parsed.Value is { } request) request.Native = native;
            var result = await pipeline.ChatAsync(run, parsed, name => headers.TryGetValue(name, out var value) ? value.ToString() : null, ct);
            // message_start's input tokens before the upstream has counted them: guessed from the prompt's size (~4 bytes a
            // token), not the tokenizer, which no request's path runs.
            var estimate = result.Stream is null ? 0 : parsed.Value!.Messages!.Sum(m => System.Text.Encoding.UTF8.GetByteCount(m.Text()) / 4 + 1);
            await MessagesResponses.WriteAsync(http, result, estimate, ct);
        }, ct);

    /// <summary>
    /// The request's input tokens, for any model the key may use: an Anthropic model's provider counts them itself (the client's
    /// request sent as it wrote it); otherwise, or when that provider cannot answer, the gateway's o200k tokenizer does. The header
    /// <c>x-gateway-token-count</c> says which (<c>provider</c> or <c>tokenizer</c>). Not metered: nothing is generated.
    /// </summary>
    private static async Task<IResult> CountTokensAsync(HttpContext http, ChatRequestParser parser, ChatRouter router, TokenCounter tokens,
        AnthropicChatProvider anthropic, IOptions<GatewayOptions> options, CancellationToken ct)
    {
        var (read, tooLarge) = await RequestBody.ReadAsync(http.Request, options.Value.MaxRequestBodyBytes, ct);
        if (tooLarge is not null) return AnthropicResults.Error(tooLarge);
        var body = read ?? [];
        JsonObject? request;
        try
        {
            request = JsonNode.Parse(body) as JsonObject;
        }
        catch (System.Text.Json.JsonException)
        {
            request = null; // the translation answers it
        }
        if (request is not null && request["max_tokens"] is null) request["max_tokens"] = 1; // not part of a count_tokens request
        var beta = http.Request.Headers.TryGetValue("anthropic-beta", out var value) ? value.ToString() : null;
        var (canonical, native, untranslatable) = MessagesRequest.Translate(
            request is null ? body : System.Text.Encoding.UTF8.GetBytes(request.ToJsonString()), beta);
        if (untranslatable is not null) return AnthropicResults.Error(untranslatable);
        var parsed = parser.Parse(canonical);
        if (parsed.Failure is { } invalid) return AnthropicResults.Error(invalid);
        var (decision, refused) = router.Route(http.GatewayKey(), parsed.Value!, _ => null);
        if (refused is not null) return AnthropicResults.Error(refused);
        if (decision!.First is { Provider.Protocol: "anthropic" } route && await anthropic.CountTokensAsync(route, native!, ct) is ({ } counted, null))
            return Counted(http, counted, "provider");
        var count = tokens.CountPrompt(parsed.Value!.Messages!) + (parsed.Value.Tools?.GetRawText().Length ?? 0) / 4;
        return Counted(http, count, "tokenizer");
    }

    private static Microsoft.AspNetCore.Http.HttpResults.JsonHttpResult<JsonObject> Counted(HttpContext http, int count, string source)
    {
        http.Response.Headers["x-gateway-token-count"] = source;
        return TypedResults.Json(new JsonObject { ["input_tokens"] = count }, GatewayJsonContext.Wire.JsonObject);
    }
}
