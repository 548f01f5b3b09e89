using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Errors;
using Gateway.Core.Wire;

namespace Gateway.Api.Errors;

/// <summary>
/// Errors in Anthropic's shape (https://docs.anthropic.com/en/api/errors): <c>{"type":"error","error":{"type","message"}}</c>, the
/// error type named by the status as Anthropic names it, for the <c>/v1/messages</c> front door.
/// </summary>
internal static class AnthropicResults
{
    public static IResult Error(GatewayError error) =>
        TypedResults.Json(Body(error), GatewayJsonContext.Wire.JsonObject, statusCode: error.Status);

    public static Task WriteAsync(HttpContext http, GatewayError error)
    {
        http.Response.StatusCode = error.Status;
        if (error.RetryAfter is { } retry)
            http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        http.Response.ContentType = "application/json";
        return JsonSerializer.SerializeAsync(http.Response.Body, Body(error), GatewayJsonContext.Wire.JsonObject);
    }

    /// <summary>The error object, also the data of a stream's <c>error</c> event.</summary>
    public static JsonObject Body(GatewayError error) => new()
    {
        ["type"] = "error",
        ["error"] = new JsonObject { ["type"] = TypeOf(error), ["message"] = error.Message },
    };

    private static string TypeOf(GatewayError error) => error.Status switch
    {
        400 or 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 => "timeout_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 or 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    };
}
