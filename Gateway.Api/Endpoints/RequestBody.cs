using System.Buffers;
using System.IO.Pipelines;
using Gateway.Core.Errors;

namespace Gateway.Api.Endpoints;

/// <summary>Reads a request body into memory up to a limit; beyond it the answer is 413.</summary>
internal static class RequestBody
{
    public static async Task<(byte[]? Body, GatewayError? Failure)> ReadAsync(HttpRequest request, long limit, CancellationToken ct)
    {
        if (request.ContentLength > limit) return (null, GatewayError.BodyTooLarge(limit));
        // Our own limit applies (below), answered as an OpenAI-shaped 413, instead of Kestrel's exception.
        var sizeFeature = request.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>();
        if (sizeFeature is { IsReadOnly: false }) sizeFeature.MaxRequestBodySize = null;

        var reader = request.BodyReader;
        while (true)
        {
            var read = await reader.ReadAsync(ct);
            if (read.Buffer.Length > limit)
            {
                reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
                return (null, GatewayError.BodyTooLarge(limit));
            }
            if (read.IsCompleted || read.IsCanceled)
            {
                var body = read.Buffer.ToArray();
                reader.AdvanceTo(read.Buffer.End);
                return (body, null);
            }
            reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }
    }
}
