using System.Buffers;
using System.Text.Json;
using Gateway.Api.Auth;
using Gateway.Api.Errors;
using Gateway.Core;
using Gateway.Core.Chat;
using Gateway.Core.Errors;
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

    public static RouteGroupBuilder MapOpenAI(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1").RequireGatewayKey();
        v1.MapPost("/chat/completions", CreateAsync);
        v1.MapGet("/models", (HttpContext http, ChatGateway gateway) =>
            TypedResults.Json(gateway.ListModels(http.GatewayKey()), GatewayJsonContext.Wire.ModelList));
        return v1;
    }

    private static async Task CreateAsync(HttpContext http, ChatGateway gateway, IOptions<GatewayOptions> options, CancellationToken ct)
    {
        var meter = gateway.StartMeter(http.GatewayKey());
        var requestId = meter.RequestId.ToString();
        // Set when the response starts, so it survives the exception handler clearing headers for a 500.
        http.Response.OnStarting(() =>
        {
            http.Response.Headers[RequestIdHeader] = requestId;
            return Task.CompletedTask;
        });
        UpstreamStream? stream = null;
        try
        {
            var (body, tooLarge) = await RequestBody.ReadAsync(http.Request, options.Value.MaxRequestBodyBytes, ct);
            if (tooLarge is not null)
            {
                await FailAsync(http, meter, tooLarge);
                return;
            }
            var parsed = ChatRequestParser.Parse(body);
            if (parsed.Failure is { } invalid)
            {
                await FailAsync(http, meter, invalid);
                return;
            }
            var request = parsed.Value!;
            meter.Asked(request);
            var (route, refused) = gateway.Resolve(http.GatewayKey(), request);
            if (refused is not null)
            {
                await FailAsync(http, meter, refused);
                return;
            }
            meter.Routed(route!);
            var call = new UpstreamCall(meter.RequestId, request, route!);

            if (!request.IsStreaming)
            {
                var result = await gateway.CompleteAsync(call, ct);
                if (result.Failure is { } failed)
                {
                    await FailAsync(http, meter, failed.ToGatewayError());
                    return;
                }
                var completion = result.Value!;
                meter.Succeeded(completion.Usage, completion.ServedModel, completion.Text);
                WriteRouteHeaders(http, route!.Provider.Name, completion.ServedModel ?? route.UpstreamModel);
                http.Response.ContentType = "application/json";
                http.Response.ContentLength = completion.Body.Length;
                await http.Response.Body.WriteAsync(completion.Body, ct);
                return;
            }

            var opened = await gateway.OpenStreamAsync(call, ct);
            if (opened.Failure is { } notOpened)
            {
                await FailAsync(http, meter, notOpened.ToGatewayError());
                return;
            }
            stream = opened.Value!;
            WriteRouteHeaders(http, route!.Provider.Name, route.UpstreamModel);
            await StreamAsync(http, meter, stream, request.ClientWantsStreamUsage, ct);
        }
        catch (Exception ex) when (IsClientGone(http, ex))
        {
            meter.ClientDisconnected(stream?.Text.ToString() ?? "", stream?.Usage);
        }
        catch (BadHttpRequestException ex)
        {
            // The client's HTTP itself was broken (bad chunked encoding, body timeout): its fault, not a crash.
            var error = new GatewayError(ex.StatusCode, "The request body could not be read.", "invalid_request_error", null, "bad_request");
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
                if (stream is not null) await stream.DisposeAsync();
            }
            finally
            {
                await meter.PublishAsync();
            }
        }
    }

    private static async Task StreamAsync(HttpContext http, RequestMeter meter, UpstreamStream stream, bool clientWantsUsage, CancellationToken ct)
    {
        http.Response.ContentType = "text/event-stream; charset=utf-8";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no";
        var output = http.Response.BodyWriter;
        try
        {
            await foreach (var chunk in stream.ReadChunksAsync(ct))
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
        catch (UpstreamStreamException ex)
        {
            // Once bytes are out the status is 200: end with an explicit error event, never a silent stop.
            var error = ex.Failure.ToGatewayError();
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

    private static async Task FailAsync(HttpContext http, RequestMeter meter, GatewayError error)
    {
        meter.Failed(error);
        await OpenAIResults.WriteAsync(http, error);
    }

    private static void WriteRouteHeaders(HttpContext http, string provider, string model)
    {
        http.Response.Headers[ProviderHeader] = provider;
        http.Response.Headers[ModelHeader] = model;
    }

    private static bool IsClientGone(HttpContext http, Exception ex) =>
        http.RequestAborted.IsCancellationRequested && ex is OperationCanceledException or IOException
        || ex is Microsoft.AspNetCore.Connections.ConnectionResetException;
}
