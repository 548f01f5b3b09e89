using System.Collections.Frozen;
using Gateway.Core.Chat;
using Gateway.Core.Errors;
using Gateway.Core.Keys;
using Gateway.Core.Validation;

namespace Gateway.Core.Routing;

/// <summary>
/// "What would happen": routes a chat request exactly as <see cref="ChatRouter.Route"/> would for a key, from the same
/// in-memory rules and models, without calling a provider or touching a budget. Shared by the admin API
/// (<c>POST /admin/routes/test</c>) and the admin app's routing page.
/// </summary>
public sealed class RouteTester(KeyCache keys, ChatRouter router, ChatRequestParser parser)
{
    // Without a key: allowed every model, no tags.
    private static readonly GatewayKey AnyKey = new(Guid.Empty, "route-test", "", new byte[32], FrozenSet<string>.Empty, null, null);

    /// <param name="request">The chat request's JSON, as a client would send it.</param>
    /// <param name="keyId">The key to route for (its tags and allowed models count); null: a key allowed every model.</param>
    /// <param name="headers">Request headers the rules may look at (names case-insensitive).</param>
    /// <returns>The decision, or the error the client would get (unknown key 404, invalid request 400, model not allowed 403, unknown model 404).</returns>
    public (RouteTestResult? Result, GatewayError? Failure) Test(ReadOnlySpan<byte> request, Guid? keyId, IReadOnlyDictionary<string, string>? headers)
    {
        var key = keyId is { } id ? keys.Find(id) : AnyKey;
        if (key is null) return (null, new GatewayError(404, $"No key '{keyId}'.", "invalid_request_error", null, "not_found"));
        var parsed = parser.Parse(request);
        if (parsed.Failure is { } invalid) return (null, invalid);
        var (decision, refused) = router.Route(key, parsed.Value!, name =>
            headers?.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value);
        if (refused is not null) return (null, refused);
        return (new RouteTestResult(decision!.Rule, [.. decision.Chain.Select(c => new RouteTestCandidate(c.Alias, c.Provider.Name, c.UpstreamModel))]), null);
    }
}
