using System.Security.Cryptography;
using System.Text;
using Gateway.Api.Errors;
using Gateway.Core;
using Gateway.Core.Errors;
using Microsoft.Extensions.Options;

namespace Gateway.Api.Auth;

/// <summary>The admin API's guard: the bearer token must equal Gateway:MasterKey (compared in constant time).</summary>
internal static class MasterKeyFilter
{
    private static readonly GatewayError Disabled = new(401,
        "The admin API is disabled: no Gateway:MasterKey is configured.", "invalid_request_error", null, "admin_disabled");

    private static readonly GatewayError Wrong = new(401,
        "Incorrect master key.", "invalid_request_error", null, "invalid_master_key");

    public static RouteGroupBuilder RequireMasterKey(this RouteGroupBuilder group)
    {
        group.AddEndpointFilter(static async (context, next) =>
        {
            var http = context.HttpContext;
            var master = http.RequestServices.GetRequiredService<IOptions<GatewayOptions>>().Value.MasterKey;
            if (string.IsNullOrEmpty(master)) return OpenAIResults.Error(Disabled);
            var presented = GatewayKeyFilter.BearerToken(http);
            // Hashing both sides makes the comparison constant-time whatever the lengths.
            var ok = CryptographicOperations.FixedTimeEquals(
                SHA256.HashData(Encoding.UTF8.GetBytes(presented.ToString())), SHA256.HashData(Encoding.UTF8.GetBytes(master)));
            return ok ? await next(context) : OpenAIResults.Error(Wrong);
        });
        return group;
    }
}
