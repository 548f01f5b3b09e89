using System.Text.Json;
using Gateway.Core.Wire;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Api.Errors;

/// <summary>
/// Gives errors made by the framework (unknown route, bad admin JSON, unhandled exception) the same
/// OpenAI shape as ours. Registered before AddProblemDetails so it wins. Never shows an exception.
/// </summary>
internal sealed class OpenAIErrorWriter : IProblemDetailsWriter
{
    public bool CanWrite(ProblemDetailsContext context) => true;

    public ValueTask WriteAsync(ProblemDetailsContext context)
    {
        var http = context.HttpContext;
        var status = http.Response.StatusCode;
        var (type, code, message) = status switch
        {
            400 => ("invalid_request_error", "bad_request", context.ProblemDetails.Detail ?? "The request is malformed."),
            404 => ("invalid_request_error", "not_found", $"Unknown path: {http.Request.Method} {http.Request.Path}."),
            405 => ("invalid_request_error", "method_not_allowed", $"{http.Request.Method} is not allowed on {http.Request.Path}."),
            408 => ("invalid_request_error", "request_timeout", "The request arrived too slowly."),
            413 => ("invalid_request_error", "request_too_large", "The request body is too large."),
            415 => ("invalid_request_error", "unsupported_media_type", "Send the body as application/json."),
            _ when status >= 500 => ("server_error", "internal_error", "The gateway hit an internal error. The request id is in the x-gateway-request-id header."),
            _ => ("invalid_request_error", null, context.ProblemDetails.Title ?? "The request failed."),
        };
        http.Response.ContentType = "application/json";
        var body = new OpenAIErrorBody(new OpenAIError(message, type, null, code));
        return new ValueTask(JsonSerializer.SerializeAsync(http.Response.Body, body, GatewayJsonContext.Wire.OpenAIErrorBody, http.RequestAborted));
    }
}
