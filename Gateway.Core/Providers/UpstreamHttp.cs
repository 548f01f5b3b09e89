using System.Globalization;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using System.Text.Json;

namespace Gateway.Core.Providers;

/// <summary>The HTTP steps every adapter shares: send, classify a refusal, read, and name a transport failure.</summary>
internal static partial class UpstreamHttp
{
    /// <summary>Sends and returns the response once its headers are in; a non-2xx answer becomes a failure via <paramref name="classify"/>.</summary>
    public static async Task<UpstreamResult<HttpResponseMessage>> SendAsync(HttpClient client, HttpRequestMessage request, string provider,
        Func<int, byte[], UpstreamFailure> classify, CancellationToken deadline, CancellationToken clientAborted)
    {
        HttpResponseMessage response;
        try
        {
            response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline);
        }
        catch (Exception ex) when (IsTransport(ex, clientAborted))
        {
            return Failed(provider, ex, clientAborted);
        }

        if (response.IsSuccessStatusCode) return response;
        using (response)
        {
            byte[] errorBody;
            try
            {
                errorBody = await response.Content.ReadAsByteArrayAsync(deadline);
            }
            catch (Exception ex) when (IsTransport(ex, clientAborted))
            {
                errorBody = [];
            }
            var failure = Scrub(classify((int)response.StatusCode, errorBody), request);
            return WaitHint(response, errorBody) is { } wait && wait > TimeSpan.Zero ? failure with { RetryAfter = wait } : failure;
        }
    }

    /// <summary>
    /// How long the provider asks us to wait: <c>retry-after-ms</c> (OpenAI, Azure), <c>Retry-After</c> (seconds or a date),
    /// Anthropic's <c>anthropic-ratelimit-*-reset</c> (RFC 3339; the latest of those whose remaining count is 0, see
    /// https://docs.anthropic.com/en/api/rate-limits#response-headers), or Gemini's <c>google.rpc.RetryInfo</c> in the error's
    /// <c>details</c> (<c>"retryDelay": "37s"</c>, https://ai.google.dev/gemini-api/docs/rate-limits). Null when it says nothing.
    /// </summary>
    internal static TimeSpan? WaitHint(HttpResponseMessage response, byte[] body)
    {
        var headers = response.Headers;
        if (headers.TryGetValues("retry-after-ms", out var ms)
            && double.TryParse(ms.First(), NumberStyles.Float, CultureInfo.InvariantCulture, out var millis))
            return Seconds(millis / 1000);
        switch (headers.RetryAfter)
        {
            case { Delta: { } delta }: return Seconds(delta.TotalSeconds);
            case { Date: { } date }: return Seconds((date - TimeProvider.System.GetUtcNow()).TotalSeconds);
        }
        DateTimeOffset? reset = null;
        foreach (var limit in (string[])["requests", "tokens", "input-tokens", "output-tokens"])
        {
            if (headers.TryGetValues($"anthropic-ratelimit-{limit}-remaining", out var left) && left.First() == "0"
                && headers.TryGetValues($"anthropic-ratelimit-{limit}-reset", out var at)
                && DateTimeOffset.TryParse(at.First(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var when)
                && (reset is null || when > reset))
                reset = when;
        }
        if (reset is { } resetAt) return Seconds((resetAt - TimeProvider.System.GetUtcNow()).TotalSeconds);
        return GeminiRetryDelay(body);
    }

    // A provider's number, whatever it says (NaN, infinity, 1e300, negative), as a wait of at most a day; null for none.
    private static TimeSpan? Seconds(double seconds) =>
        double.IsFinite(seconds) && seconds > 0 ? TimeSpan.FromSeconds(Math.Min(seconds, 86_400)) : null;

    // {"error":{"code":429,…,"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}
    private static TimeSpan? GeminiRetryDelay(byte[] body)
    {
        if (body.AsSpan().IndexOf("RetryInfo"u8) < 0) return null;
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("error", out var error)
                || error.ValueKind != JsonValueKind.Object || !error.TryGetProperty("details", out var details) || details.ValueKind != JsonValueKind.Array)
                return null;
            foreach (var detail in details.EnumerateArray())
            {
                if (detail.ValueKind == JsonValueKind.Object && detail.TryGetProperty("retryDelay", out var delay) && delay.ValueKind == JsonValueKind.String
                    && delay.GetString() is { Length: > 1 } text && text.EndsWith('s')
                    && double.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds))
                    return Seconds(seconds);
            }
        }
        catch (JsonException)
        {
            // not JSON: no hint
        }
        return null;
    }

    /// <summary>
    /// A provider's error text reaches the client, logs and the usage row: whatever it echoes of the credentials the gateway
    /// sent (an Authorization, x-api-key or x-goog-api-key value), and anything shaped like a key, is removed from it.
    /// </summary>
    private static UpstreamFailure Scrub(UpstreamFailure failure, HttpRequestMessage request)
    {
        // Cut only once scrubbed: a cut through an echoed key would leave a piece too short to recognise.
        var detail = Scrub(failure.Detail, request) is var clean && clean.Length > MaxDetail ? clean[..MaxDetail] + "…" : clean;
        var caller = failure.CallerError is { } error && Scrub(error.Message, request) is var message && message != error.Message
            ? error with { Message = message } : failure.CallerError;
        return ReferenceEquals(detail, failure.Detail) && ReferenceEquals(caller, failure.CallerError)
            ? failure : failure with { Detail = detail, CallerError = caller };
    }

    private static string Scrub(string text, HttpRequestMessage request)
    {
        var scrubbed = text;
        foreach (var header in (string[])["Authorization", "x-api-key", "x-goog-api-key"])
        {
            if (!request.Headers.TryGetValues(header, out var values)) continue;
            foreach (var value in values)
            {
                var secret = value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? value[7..].Trim() : value.Trim();
                if (secret.Length >= 4) scrubbed = scrubbed.Replace(secret, "[REDACTED]", StringComparison.Ordinal);
            }
        }
        scrubbed = MaskedKey().Replace(Logging.Redactor.RedactKeys(scrubbed), "[REDACTED]");
        return scrubbed == text ? text : scrubbed;
    }

    // A key shown masked ("sk-abc*************wxyz"): its visible ends are still part of a secret.
    [GeneratedRegex(@"[A-Za-z0-9_\-]*\*{4,}[A-Za-z0-9_\-]*", RegexOptions.CultureInvariant)]
    private static partial Regex MaskedKey();

    // The longest failure detail kept (the gateway's words and the provider's message).
    private const int MaxDetail = 600;

    // Larger answers go through HttpClient's own buffering, which enforces its size limit.
    private const long MaxDirectRead = 16 * 1024 * 1024;

    /// <summary>Reads a whole (non-streaming) answer.</summary>
    public static async Task<UpstreamResult<byte[]>> ReadAsync(HttpResponseMessage response, string provider,
        CancellationToken deadline, CancellationToken clientAborted)
    {
        try
        {
            // With a Content-Length, straight into an array of that size (ReadAsByteArrayAsync buffers, then copies).
            if (response.Content.Headers.ContentLength is not (> 0 and <= MaxDirectRead and var length))
                return await response.Content.ReadAsByteArrayAsync(deadline);
            var body = new byte[length];
            await using var stream = await response.Content.ReadAsStreamAsync(deadline);
            await stream.ReadExactlyAsync(body, deadline); // shorter than announced: EndOfStreamException, an IOException
            return body;
        }
        catch (Exception ex) when (IsTransport(ex, clientAborted))
        {
            return Failed(provider, ex, clientAborted);
        }
    }

    /// <summary>
    /// A list-models call ("test connection") within <paramref name="timeout"/>: the ids <paramref name="ids"/> finds in the
    /// answer, or the failure: a refusal keeps the provider's status and its own message; a 2xx answer that is not a
    /// model list (a wrong base URL serving something else) is a protocol failure.
    /// </summary>
    public static async Task<UpstreamResult<ModelListing>> ListModelsAsync(HttpClient client, HttpRequestMessage request, string provider,
        Func<JsonElement, IEnumerable<string>?> ids, TimeSpan timeout, CancellationToken clientAborted)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(clientAborted);
        deadline.CancelAfter(timeout);
        var sent = await SendAsync(client, request, provider, (status, body) => Refusal(provider, status, body), deadline.Token, clientAborted);
        if (sent.Failure is { } failure) return failure;
        using var response = sent.Value!;
        var read = await ReadAsync(response, provider, deadline.Token, clientAborted);
        if (read.Failure is { } broken) return broken;
        try
        {
            using var doc = JsonDocument.Parse(read.Value!);
            if (ids(doc.RootElement) is { } found) return new ModelListing([.. found]);
        }
        catch (JsonException)
        {
            // not JSON: not a model list either
        }
        var status = (int)response.StatusCode;
        return new UpstreamFailure(UpstreamFailureKind.Protocol, provider, $"its answer ({status}) is not a model list; check the base URL", status);
    }

    /// <summary>The string <paramref name="field"/> of each object in the array <paramref name="array"/>; null when the answer has another shape.</summary>
    public static IEnumerable<string>? Ids(JsonElement root, string array, string field) =>
        root.ValueKind == JsonValueKind.Object && root.TryGetProperty(array, out var items) && items.ValueKind == JsonValueKind.Array
            ? [.. items.EnumerateArray()
                .Where(i => i.ValueKind == JsonValueKind.Object && i.TryGetProperty(field, out var id) && id.ValueKind == JsonValueKind.String)
                .Select(i => i.GetProperty(field).GetString()!)]
            : null;

    // A refused call as the provider explained it: its status, and its own message when it sent one.
    private static UpstreamFailure Refusal(string provider, int status, byte[] body)
    {
        var failure = UpstreamFailure.FromStatus(provider, status, body);
        return ProviderMessage(body) is { } message ? failure with { Detail = message } : failure;
    }

    /// <summary>
    /// The message of a provider's error body: <c>{"error":{"message"}}</c> (OpenAI, Anthropic, Gemini), <c>{"error":"…"}</c>
    /// (Ollama, some proxies) or <c>{"message"}</c>; at most 500 characters. Null when the body says nothing readable.
    /// </summary>
    public static string? ProviderMessage(byte[] body, int maxLength = 500)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) return null;
            var error = root.TryGetProperty("error", out var e) ? e : root;
            var message = error.ValueKind switch
            {
                JsonValueKind.String => error.GetString(),
                JsonValueKind.Object when error.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String => m.GetString(),
                _ => null,
            };
            return string.IsNullOrWhiteSpace(message) ? null : message.Length > maxLength ? message[..maxLength] + "…" : message;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>A network error or our own deadline; the client's abort is not one (it propagates).</summary>
    public static bool IsTransport(Exception ex, CancellationToken clientAborted) =>
        ex is HttpRequestException or IOException || ex is OperationCanceledException && !clientAborted.IsCancellationRequested;

    public static UpstreamFailure Failed(string provider, Exception ex, CancellationToken clientAborted)
    {
        clientAborted.ThrowIfCancellationRequested();
        return ex switch
        {
            OperationCanceledException => new UpstreamFailure(UpstreamFailureKind.Timeout, provider, "timed out"),
            HttpRequestException { InnerException: SocketException } or HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError }
                => new UpstreamFailure(UpstreamFailureKind.Connect, provider, "could not connect"),
            _ => new UpstreamFailure(UpstreamFailureKind.Protocol, provider, "the connection failed"),
        };
    }
}
