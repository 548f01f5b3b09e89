using System.Globalization;
using Gateway.Core.Pipeline;

namespace Gateway.Api.Endpoints;

/// <summary>The gateway's response headers: what a request's <see cref="PipelineFacts"/> say, as every front door reports them.</summary>
internal static class GatewayHeaders
{
    public const string RequestId = "x-gateway-request-id";
    public const string Provider = "x-gateway-provider";
    public const string Model = "x-gateway-model";
    public const string Attempts = "x-gateway-attempts";
    public const string Fallback = "x-gateway-fallback";
    public const string Rule = "x-gateway-rule";
    public const string Cache = "x-gateway-cache";
    public const string DowngradedFrom = "x-gateway-downgraded-from";
    public const string BudgetRemaining = "x-gateway-budget-remaining";
    public const string Injection = "x-gateway-injection";

    /// <summary>Writes the facts' headers (call before the response starts).</summary>
    public static void Write(HttpResponse response, PipelineFacts facts)
    {
        var headers = response.Headers;
        if (facts.Limits is { } limits)
        {
            // OpenAI's names, so clients that back off on them work unchanged.
            if (limits.RequestLimit is { } rpm) headers["x-ratelimit-limit-requests"] = Number(rpm);
            if (limits.RequestsRemaining is { } requestsLeft) headers["x-ratelimit-remaining-requests"] = Number(requestsLeft);
            if (limits.TokenLimit is { } tpm) headers["x-ratelimit-limit-tokens"] = Number(tpm);
            if (limits.TokensRemaining is { } tokensLeft) headers["x-ratelimit-remaining-tokens"] = Number(tokensLeft);
        }
        if (facts.InjectionFlagged) headers[Injection] = "flagged";
        if (facts.Cache is { } cache) headers[Cache] = cache;
        if (facts.BudgetRemaining is { } remaining) headers[BudgetRemaining] = remaining.ToString("0.######", CultureInfo.InvariantCulture);
        if (facts.DowngradedFrom is { } original) headers[DowngradedFrom] = original;
        if (facts.Rule is { } rule) headers[Rule] = rule;
        if (facts.Attempts is { } attempts)
        {
            headers[Attempts] = Number(attempts);
            headers[Fallback] = facts.Fallback ? "true" : "false";
        }
        if (facts.Provider is { } provider) headers[Provider] = provider;
        if (facts.Model is { } model) headers[Model] = model;
    }

    private static string Number(int value) => value.ToString(CultureInfo.InvariantCulture);
}
