using Gateway.Api.Errors;
using Gateway.Core.Keys;

namespace Gateway.Api.Auth;

/// <summary>Authenticates /v1 calls from the in-memory key snapshot: no database round trip.</summary>
internal static class GatewayKeyFilter
{
    private static readonly object ItemKey = new();

    /// <param name="group">The front door's routes.</param>
    /// <param name="error">The front door's error shape (OpenAI's when null).</param>
    /// <param name="apiKeyHeader">Also take the key from <c>x-api-key</c>, as Anthropic's clients send it (Bearer wins when both are sent).</param>
    public static RouteGroupBuilder RequireGatewayKey(this RouteGroupBuilder group, Func<Gateway.Core.Errors.GatewayError, IResult>? error = null,
        bool apiKeyHeader = false)
    {
        error ??= OpenAIResults.Error;
        group.AddEndpointFilter(async (context, next) =>
        {
            var http = context.HttpContext;
            var keys = http.RequestServices.GetRequiredService<KeyCache>();
            var presented = BearerToken(http);
            if (presented.IsEmpty && apiKeyHeader) presented = http.Request.Headers["x-api-key"].ToString().AsSpan().Trim();
            var (key, failure) = keys.Authenticate(presented);
            if (failure is not null) return error(failure);
            http.Items[ItemKey] = key;
            return await next(context);
        });
        return group;
    }

    public static GatewayKey GatewayKey(this HttpContext http) =>
        http.Items[ItemKey] as GatewayKey ?? throw new InvalidOperationException("Endpoint is missing RequireGatewayKey().");

    internal static ReadOnlySpan<char> BearerToken(HttpContext http)
    {
        var header = http.Request.Headers.Authorization.ToString().AsSpan().Trim();
        return header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : [];
    }
}
