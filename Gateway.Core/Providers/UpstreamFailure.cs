using System.Text.Json;
using Gateway.Core.Errors;

namespace Gateway.Core.Providers;

public enum UpstreamFailureKind
{
    /// <summary>429 from the provider.</summary>
    RateLimited,
    /// <summary>503 or 529 (Anthropic's overloaded).</summary>
    Overloaded,
    /// <summary>Any other 5xx.</summary>
    ServerError,
    Timeout,
    Connect,
    /// <summary>The provider refused the gateway's own credentials (401/403): not the caller's fault.</summary>
    AuthRejected,
    /// <summary>A 4xx caused by the request itself: goes back to the caller.</summary>
    CallerError,
    /// <summary>An answer the gateway could not understand, or a stream that broke.</summary>
    Protocol,
    /// <summary>The provider cannot be called (e.g. its secret is unavailable).</summary>
    Misconfigured,
}

/// <summary>Why an attempt failed; the one place that maps a failure to the client's status.</summary>
/// <param name="Usage">Tokens the provider reported (and billed) although the answer is unusable.</param>
public sealed record UpstreamFailure(UpstreamFailureKind Kind, string Provider, string Detail, int? UpstreamStatus = null,
    GatewayError? CallerError = null, TokenUsage? Usage = null)
{
    /// <summary>The provider's Retry-After, when it sent one: a cool-down before it is tried again.</summary>
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>Short name of the outcome for the attempt trail.</summary>
    public string Outcome => Kind switch
    {
        UpstreamFailureKind.RateLimited => "rate_limited",
        UpstreamFailureKind.Overloaded => "overloaded",
        UpstreamFailureKind.ServerError => "server_error",
        UpstreamFailureKind.Timeout => "timeout",
        UpstreamFailureKind.Connect => "connect_failed",
        UpstreamFailureKind.AuthRejected => "auth_rejected",
        UpstreamFailureKind.CallerError => "caller_error",
        UpstreamFailureKind.Misconfigured => "misconfigured",
        _ => "protocol_error",
    };

    /// <summary>Whether the next candidate should be tried (the caller's own mistakes are not retried).</summary>
    public bool ShouldFailOver => Kind is not UpstreamFailureKind.CallerError;

    /// <summary>
    /// What the client hears when no candidate could answer: a provider's 429 stays a 429 with Retry-After (clients and SDKs
    /// back off on it; a bare 503 makes them retry blind), an overload or a refusal for skips only is a 503 with Retry-After
    /// when the wait is known; the provider's own words are kept in the message.
    /// </summary>
    public GatewayError ToGatewayError() => Kind switch
    {
        UpstreamFailureKind.CallerError when CallerError is not null => CallerError,
        UpstreamFailureKind.RateLimited => GatewayError.UpstreamRateLimited(Provider, Detail) with { RetryAfter = RetryAfter ?? TimeSpan.FromSeconds(1) },
        UpstreamFailureKind.Overloaded => GatewayError.UpstreamUnavailable(Provider, Detail) with { RetryAfter = RetryAfter },
        UpstreamFailureKind.Timeout => GatewayError.UpstreamTimeout(Provider),
        _ => GatewayError.UpstreamError(Provider, Detail),
    };

    public static UpstreamFailure SecretUnavailable(string provider) =>
        new(UpstreamFailureKind.Misconfigured, provider, "its secret is not available");

    /// <summary>
    /// Classifies a non-success HTTP answer. The provider's own error message is kept: for 4xx as the caller's error, for the
    /// others (but a refusal of the gateway's credentials) after the gateway's short description (e.g. "rate limited (429):
    /// Rate limit reached for gpt-4o …").
    /// </summary>
    public static UpstreamFailure FromStatus(string provider, int status, byte[] body)
    {
        var failure = Classify(provider, status, body);
        // A refusal of the gateway's credentials says nothing the client needs, and providers echo part of the key in it.
        return failure.Kind is not (UpstreamFailureKind.CallerError or UpstreamFailureKind.AuthRejected) && UpstreamHttp.ProviderMessage(body, int.MaxValue) is { } said
            ? failure with { Detail = $"{failure.Detail}: {said}" }
            : failure;
    }

    private static UpstreamFailure Classify(string provider, int status, byte[] body) => status switch
    {
        429 => new(UpstreamFailureKind.RateLimited, provider, "rate limited (429)", status),
        503 or 529 => new(UpstreamFailureKind.Overloaded, provider, $"overloaded ({status})", status),
        >= 500 => new(UpstreamFailureKind.ServerError, provider, $"server error ({status})", status),
        401 or 403 => new(UpstreamFailureKind.AuthRejected, provider, $"it rejected the gateway's credentials ({status})", status),
        // Billing (402) and an unknown upstream model or path (404) are the gateway's set-up, not the caller's request.
        402 => new(UpstreamFailureKind.AuthRejected, provider, "its account cannot pay for the call (402)", status),
        404 => new(UpstreamFailureKind.Misconfigured, provider, "it does not know the configured model or path (404)", status),
        _ => new(UpstreamFailureKind.CallerError, provider, $"status {status}", status, CallerErrorFrom(status, body)),
    };

    private static GatewayError CallerErrorFrom(int status, byte[] body)
    {
        // OpenAI-compatible providers answer {"error":{...}}; keep their words, they describe the request.
        var clientStatus = status == 413 ? 413 : 400;
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object)
            {
                var message = Str(e, "message") ?? $"The provider refused the request ({status}).";
                return new GatewayError(clientStatus, message, Str(e, "type") ?? "invalid_request_error", Str(e, "param"),
                    Str(e, "code") ?? (IsContextTooLong(message) ? "context_length_exceeded" : null));
            }
        }
        catch (JsonException)
        {
            // not JSON: fall through to a generic message
        }
        return new GatewayError(clientStatus, $"The provider refused the request ({status}).", "invalid_request_error", null, "upstream_rejected");
    }

    // Anthropic: "prompt is too long: 210000 tokens > 200000 maximum"; Gemini: "The input token count (…) exceeds the maximum…".
    // OpenAI clients recognise the condition by OpenAI's code.
    private static bool IsContextTooLong(string message) =>
        message.Contains("token", StringComparison.OrdinalIgnoreCase)
        && (message.Contains("too long", StringComparison.OrdinalIgnoreCase) || message.Contains("exceeds the maximum", StringComparison.OrdinalIgnoreCase));

    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}

/// <summary>Thrown from a stream's enumeration when the provider fails after the stream opened.</summary>
public sealed class UpstreamStreamException(UpstreamFailure failure) : Exception(failure.Detail)
{
    public UpstreamFailure Failure { get; } = failure;
}
