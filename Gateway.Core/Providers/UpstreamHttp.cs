using System.Net.Sockets;

namespace Gateway.Core.Providers;

/// <summary>The HTTP steps every adapter shares: send, classify a refusal, read, and name a transport failure.</summary>
internal static class UpstreamHttp
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
            var failure = classify((int)response.StatusCode, errorBody);
            var retryAfter = response.Headers.RetryAfter switch
            {
                { Delta: { } delta } => delta,
                { Date: { } date } => date - TimeProvider.System.GetUtcNow(),
                _ => (TimeSpan?)null,
            };
            return retryAfter is { } wait && wait > TimeSpan.Zero ? failure with { RetryAfter = wait } : failure;
        }
    }

    /// <summary>Reads a whole (non-streaming) answer.</summary>
    public static async Task<UpstreamResult<byte[]>> ReadAsync(HttpResponseMessage response, string provider,
        CancellationToken deadline, CancellationToken clientAborted)
    {
        try
        {
            return await response.Content.ReadAsByteArrayAsync(deadline);
        }
        catch (Exception ex) when (IsTransport(ex, clientAborted))
        {
            return Failed(provider, ex, clientAborted);
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
