using Gateway.Api.Auth;
using Gateway.Core.Errors;
using Gateway.Core.Pipeline;

namespace Gateway.Api.Endpoints;

/// <summary>
/// The HTTP frame every front door's request runs in: the pipeline's run is started for the authenticated key before anything
/// else, the body is read within its limit, and the run is disposed (its usage record published exactly once) whatever happens.
/// What only HTTP knows is judged here: a client that went away, a body the client could not send, a bug (500).
/// </summary>
internal static class FrontDoor
{
    /// <param name="http">The request.</param>
    /// <param name="pipeline">The shared pipeline.</param>
    /// <param name="maxBodyBytes"><c>Gateway:MaxRequestBodyBytes</c>: a larger body is refused with 413.</param>
    /// <param name="operation">The pipeline operation (chat or embeddings).</param>
    /// <param name="frontDoor">The front door's name on the usage row (<see cref="FrontDoorNames"/>).</param>
    /// <param name="writeError">Writes an error in the front door's shape (a body too large or unreadable).</param>
    /// <param name="handle">Parses the body, runs the pipeline and writes the result in the front door's wire format.</param>
    /// <param name="ct">The request's token.</param>
    public static async Task RunAsync(HttpContext http, ChatPipeline pipeline, long maxBodyBytes, string operation, string frontDoor,
        Func<HttpContext, GatewayError, Task> writeError, Func<PipelineRun, byte[], Task> handle, CancellationToken ct)
    {
        await using var run = pipeline.Start(http.GatewayKey(), operation, frontDoor);
        var requestId = run.RequestId.ToString();
        // Set when the response starts, so it survives the exception handler clearing headers for a 500.
        http.Response.OnStarting(() =>
        {
            http.Response.Headers[GatewayHeaders.RequestId] = requestId;
            return Task.CompletedTask;
        });
        try
        {
            var (body, tooLarge) = await RequestBody.ReadAsync(http.Request, maxBodyBytes, ct);
            if (tooLarge is not null)
            {
                await run.FailAsync(tooLarge);
                await writeError(http, tooLarge);
                return;
            }
            await handle(run, body ?? []);
        }
        catch (Exception ex) when (IsClientGone(http, ex))
        {
            run.ClientGone();
        }
        catch (BadHttpRequestException ex)
        {
            // The client's HTTP itself was broken (bad chunked encoding, a body slower than Gateway:Server's minimum rate):
            // its fault, not a crash.
            var error = ex.StatusCode == StatusCodes.Status408RequestTimeout
                ? new GatewayError(408, "The request body arrived too slowly; the gateway stopped waiting for it.", "invalid_request_error", null, "request_timeout")
                : new GatewayError(ex.StatusCode, "The request body could not be read.", "invalid_request_error", null, "bad_request");
            run.Meter.Failed(error);
            if (!http.Response.HasStarted) await writeError(http, error);
        }
        catch
        {
            run.Meter.Crashed();
            throw;
        }
    }

    private static bool IsClientGone(HttpContext http, Exception ex) =>
        http.RequestAborted.IsCancellationRequested && ex is OperationCanceledException or IOException
        || ex is Microsoft.AspNetCore.Connections.ConnectionResetException;
}
