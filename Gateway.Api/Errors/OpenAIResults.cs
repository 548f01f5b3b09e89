using System.Text.Json;
using Gateway.Core.Errors;
using Gateway.Core.Wire;

namespace Gateway.Api.Errors;

/// <summary>Writes errors in OpenAI's shape; the one way an error leaves the proxy.</summary>
internal static class OpenAIResults
{
    public static IResult Error(GatewayError error) =>
        TypedResults.Json(error.ToBody(), GatewayJsonContext.Wire.OpenAIErrorBody, statusCode: error.Status);

    public static Task WriteAsync(HttpContext http, GatewayError error)
    {
        http.Response.StatusCode = error.Status;
        if (error.RetryAfter is { } retry)
            http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        http.Response.ContentType = "application/json";
        return JsonSerializer.SerializeAsync(http.Response.Body, error.ToBody(), GatewayJsonContext.Wire.OpenAIErrorBody);
    }
}
