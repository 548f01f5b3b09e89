using Gateway.Core;
using Microsoft.Extensions.Options;

namespace Gateway.Api.Auth;

/// <summary>
/// Operators' endpoints (<c>/metrics</c>, <c>/health/upstreams</c>): with Gateway:ManagementPort set they exist only on
/// connections to that local port, and answer 404 elsewhere, as an unknown path does. The connection's local port is
/// checked, never the Host header, which the client chooses.
/// </summary>
internal static class ManagementPort
{
    private sealed class ManagementOnlyMetadata;

    private static readonly ManagementOnlyMetadata Marker = new();

    /// <summary>Marks an endpoint as served on the management port only (when one is set).</summary>
    public static TBuilder ManagementOnly<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(Marker);

    /// <summary>Runs after routing (WebApplication routes before the app's own middleware), so the endpoint is known.</summary>
    public static IApplicationBuilder UseManagementPort(this IApplicationBuilder app)
    {
        var port = app.ApplicationServices.GetRequiredService<IOptions<GatewayOptions>>().Value.ManagementPort;
        if (port is null) return app;
        return app.Use((http, next) =>
        {
            if (http.Connection.LocalPort == port || http.GetEndpoint()?.Metadata.GetMetadata<ManagementOnlyMetadata>() is null) return next(http);
            // No body: the status code pages write the same 404 an unknown path gets.
            http.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        });
    }
}
