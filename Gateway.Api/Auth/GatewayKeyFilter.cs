using Gateway.Api.Errors;
using Gateway.Core.Keys;

namespace Gateway.Api.Auth;

/// <summary>Authenticates /v1 calls from the in-memory key snapshot: no database round trip.</summary>
internal static class GatewayKeyFilter
{
    private static readonly object ItemKey = new();

    public static RouteGroupBuilder RequireGatewayKey(this RouteGroupBuilder group)
    {
        group.AddEndpointFilter(static async (context, next) =>
        {
            var http = context.HttpContext;
            var keys = http.RequestServices.GetRequiredService<KeyCache>();
            var (key, failure) = keys.Authenticate(BearerToken(http));
            if (failure is not null) return OpenAIResults.Error(failure);
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
