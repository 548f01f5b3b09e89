using System.Security.Cryptography;
using System.Text;
using Gateway.Api.Errors;
using Gateway.Core;
using Gateway.Core.Admin;
using Gateway.Core.Errors;
using Gateway.Core.Limits;
using Microsoft.Extensions.Options;

namespace Gateway.Api.Auth;

/// <summary>Who is calling the admin API (for the audit log): the master key or a named admin token.</summary>
internal static class AdminCaller
{
    private static readonly AsyncLocal<string?> Current = new();

    public static string Name => Current.Value ?? Gateway.Core.Audit.AuditLog.MasterKeyActor;

    internal static void Set(string? name) => Current.Value = name;

    public static bool IsMasterKey => Current.Value is null;
}

/// <summary>
/// The admin API's guard: the bearer token must equal Gateway:MasterKey (compared in constant time) or be a live admin
/// token (<see cref="AdminTokens"/>, in memory). With Gateway:AdminPort set, the admin API answers only on that local port.
/// A client address that failed Gateway:AdminAuthFailuresPerAddress times within the window gets 429 (with Retry-After)
/// before its token is looked at, so guessing is slow and a flood of made-up tokens costs no more than a lookup each.
/// </summary>
internal static class MasterKeyFilter
{
    private static readonly GatewayError Disabled = new(401,
        "The admin API is disabled: no Gateway:MasterKey is configured.", "invalid_request_error", null, "admin_disabled");

    private static readonly GatewayError Wrong = new(401,
        "Incorrect master key or admin token.", "invalid_request_error", null, "invalid_master_key");

    private static readonly GatewayError NotHere = new(404, "Not found.", "invalid_request_error", null, "not_found");

    private static async Task<IResult> RefuseAsync(HttpContext http, TimeSpan retryAfter)
    {
        var seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
        await OpenAIResults.WriteAsync(http, new GatewayError(429,
            $"Too many failed authentications from this address. Try again in {seconds.ToString(System.Globalization.CultureInfo.InvariantCulture)} s.",
            "rate_limit_error", null, "too_many_failed_authentications") { RetryAfter = retryAfter });
        return Results.Empty;
    }

    private sealed class MasterKeyMetadata;

    private static readonly MasterKeyMetadata Marker = new();

    /// <summary>Marks the group's endpoints as the admin API's: <see cref="UseMasterKey"/> guards them.</summary>
    public static RouteGroupBuilder RequireMasterKey(this RouteGroupBuilder group) => group.WithMetadata(Marker);

    /// <summary>
    /// Guards every endpoint marked by <see cref="RequireMasterKey"/>, chosen by the endpoint routing picked (never by the path's
    /// spelling), before the endpoint binds a body: a middleware, not an endpoint filter, since generated handlers read the
    /// body before any filter runs. Runs after routing (WebApplication routes before the app's own middleware).
    /// </summary>
    public static IApplicationBuilder UseMasterKey(this IApplicationBuilder app) => app.Use(async (http, next) =>
    {
        if (http.GetEndpoint()?.Metadata.GetMetadata<MasterKeyMetadata>() is null)
        {
            await next(http);
            return;
        }
        var (refused, caller) = await CheckAsync(http);
        if (refused is not null)
        {
            await refused.ExecuteAsync(http);
            return;
        }
        // Set here, not in CheckAsync: an async local set inside an awaited method does not outlive it.
        AdminCaller.Set(caller);
        await next(http);
    });

    // The refusal, or null and the caller's name for the audit log (null: the master key).
    private static async Task<(IResult? Refused, string? Caller)> CheckAsync(HttpContext http)
    {
        var options = http.RequestServices.GetRequiredService<IOptions<GatewayOptions>>().Value;
        // Bound to its own port (e.g. a loopback-only listener): elsewhere the admin API does not exist.
        if (options.AdminPort is { } port && http.Connection.LocalPort != port) return (OpenAIResults.Error(NotHere), null);
        var master = options.MasterKey;
        if (string.IsNullOrEmpty(master)) return (OpenAIResults.Error(Disabled), null);
        var throttle = http.RequestServices.GetRequiredService<FailedAuthThrottle>();
        var address = http.Connection.RemoteIpAddress;
        if (throttle.IsRefused(address, out var retryAfter)) return (await RefuseAsync(http, retryAfter), null);
        var presented = GatewayKeyFilter.BearerToken(http).ToString();
        // Hashing both sides makes the comparison constant-time whatever the lengths.
        if (CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), SHA256.HashData(Encoding.UTF8.GetBytes(master))))
            return (null, null);
        if (http.RequestServices.GetRequiredService<AdminTokens>().NameOf(presented) is { } name)
            return (null, "admin-token:" + name);
        // Concurrent guesses may all pass the check above; the one that is one too many is answered 429 as well.
        return (throttle.RecordFailure(address, out retryAfter) ? OpenAIResults.Error(Wrong) : await RefuseAsync(http, retryAfter), null);
    }
}
