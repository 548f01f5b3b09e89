using System.Globalization;
using Gateway.Core.Wire;

namespace Gateway.Core.Errors;

/// <summary>An expected failure, answered to the client in OpenAI's error shape.</summary>
public sealed record GatewayError(int Status, string Message, string Type, string? Param, string? Code)
{
    /// <summary>Sent as the Retry-After header (rate limits).</summary>
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>Short machine-readable kind stored on the usage row.</summary>
    public string Kind => Code ?? Type;

    public OpenAIErrorBody ToBody() => new(new OpenAIError(Message, Type, Param, Code));

    public static GatewayError BadRequest(string message, string? param = null, string? code = null) =>
        new(400, message, "invalid_request_error", param, code);

    public static GatewayError InvalidJson(string detail) =>
        new(400, $"We could not parse the JSON body of your request. ({detail})", "invalid_request_error", null, "invalid_json");

    public static readonly GatewayError MissingKey = new(401,
        "You didn't provide an API key. Send it as 'Authorization: Bearer gw-...'.", "invalid_request_error", null, "missing_api_key");

    public static readonly GatewayError InvalidKey = new(401,
        "Incorrect API key provided.", "invalid_request_error", null, "invalid_api_key");

    public static readonly GatewayError RevokedKey = new(401,
        "This API key has been revoked.", "invalid_request_error", null, "revoked_api_key");

    public static readonly GatewayError ExpiredKey = new(401,
        "This API key has expired.", "invalid_request_error", null, "expired_api_key");

    public static GatewayError ModelNotAllowed(string model) => new(403,
        $"This API key is not allowed to use the model '{model}'.", "invalid_request_error", "model", "model_not_allowed");

    public static GatewayError ModelNotFound(string model) => new(404,
        $"The model '{model}' does not exist or is not enabled on this gateway.", "invalid_request_error", "model", "model_not_found");

    public static readonly GatewayError InsufficientQuota = new(429,
        "You exceeded this key's budget: its hard cap for today is reached. Ask an admin to raise it, or try again tomorrow.",
        "insufficient_quota", null, "insufficient_quota");

    /// <summary>A capped key's request refused: nothing is left under the cap, or the request's worst case is more than what is left.</summary>
    /// <param name="worstCase">What the request could cost, and how that was reckoned (tokens and prices).</param>
    /// <param name="fitsMaxTokens">The largest <c>max_tokens</c> that would fit what is left; null or below 1 when none would.</param>
    public static GatewayError HardCapRefusal(decimal cap, decimal left, decimal worstCase, string reckoning, long? fitsMaxTokens)
    {
        if (left <= 0)
            return new(429, $"You exceeded this key's budget: its hard cap for today ({Usd(cap)}) is reached (spent, or reserved by requests in "
                + "flight). Ask an admin to raise it, or try again tomorrow.", "insufficient_quota", null, "insufficient_quota");
        var advice = fitsMaxTokens is >= 1
            ? $"a max_tokens of at most {fitsMaxTokens.Value.ToString("N0", CultureInfo.InvariantCulture)} would fit"
            : "even its prompt alone costs more than that: shorten it";
        return new(429, $"This request's worst case is {Usd(worstCase)} ({reckoning}), and the key has room for {Usd(left)} in one request under its "
            + $"{Usd(cap)} hard cap today; {advice}. Or ask an admin to raise the cap.", "insufficient_quota", null, "insufficient_quota");
    }

    /// <summary>
    /// Dollars with the digits that matter: $0.01, $0.020009, $12.50. Below a dollar to the millionth, so a worst case just
    /// over what is left never reads the same as it.
    /// </summary>
    public static string Usd(decimal amount) =>
        "$" + (amount >= 1 ? Math.Round(amount, 4).ToString("#,0.00##", CultureInfo.InvariantCulture)
            : Math.Round(amount, 6).ToString("0.00####", CultureInfo.InvariantCulture));

    public static readonly GatewayError MonthlyQuota = new(429,
        "You exceeded this key's monthly budget. Ask an admin to raise it, or wait for next month.",
        "insufficient_quota", null, "insufficient_quota");

    public static readonly GatewayError EndUserQuota = new(429,
        "You exceeded today's budget for this end user (the request's 'user'). Try again tomorrow.",
        "insufficient_quota", null, "insufficient_quota");

    public static GatewayError TagQuota(string tag) => new(429,
        $"You exceeded the budget of '{tag}', which this key shares with others.", "insufficient_quota", null, "insufficient_quota");

    /// <summary>The prompt-injection filter blocked the request: names what it found, never the prompt.</summary>
    public static GatewayError PromptInjection(IReadOnlyList<string> categories) => new(400,
        $"The gateway's prompt-injection filter refused this request ({string.Join(", ", categories)}). Rephrase it, or ask an admin about "
        + "this key's 'injection_filter' setting.", "invalid_request_error", "messages", "prompt_injection_detected");

    public static GatewayError BodyTooLarge(long limit) => new(413,
        $"The request body is larger than the gateway's limit of {limit} bytes.", "invalid_request_error", null, "request_too_large");

    public static GatewayError UpstreamError(string provider, string detail) => new(502,
        $"The provider '{provider}' failed: {detail}", "server_error", null, "upstream_error");

    public static GatewayError UpstreamRateLimited(string provider, string detail) => new(429,
        $"The provider '{provider}' is rate limiting: {detail}", "rate_limit_error", null, "rate_limit_exceeded");

    public static GatewayError UpstreamUnavailable(string provider, string detail) => new(503,
        $"The provider '{provider}' is unavailable: {detail}", "server_error", null, "upstream_unavailable");

    public static GatewayError UpstreamTimeout(string provider) => new(504,
        $"The provider '{provider}' did not answer in time.", "server_error", null, "upstream_timeout");
}
