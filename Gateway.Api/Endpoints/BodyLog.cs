using Gateway.Core;
using Gateway.Core.Logging;
using Gateway.Core.Wire;
using Microsoft.Extensions.Options;

namespace Gateway.Api.Endpoints;

/// <summary>
/// Prompt and answer text in the logs, only with <c>Gateway:LogBodies</c> on, and always redacted first (personal data,
/// card numbers, national ids, API-key-like strings). Category <c>Gateway.Bodies</c>, so a sink can route or drop it.
/// </summary>
internal static partial class BodyLog
{
    public const string Category = "Gateway.Bodies";

    public static void Prompt(HttpContext http, Guid requestId, ChatCompletionRequest request)
    {
        if (Logger(http) is not { } logger || !logger.IsEnabled(LogLevel.Information)) return;
        var redacted = Redactor.Redact(string.Join("\n", request.Messages!.Select(m => $"{m.Role}: {m.Text()}")));
        Log.Prompt(logger, requestId, redacted);
    }

    public static void Answer(HttpContext http, Guid requestId, string text)
    {
        if (Logger(http) is not { } logger || !logger.IsEnabled(LogLevel.Information)) return;
        var redacted = Redactor.Redact(text);
        Log.Answer(logger, requestId, redacted);
    }

    private static ILogger? Logger(HttpContext http)
    {
        if (!http.RequestServices.GetRequiredService<IOptions<GatewayOptions>>().Value.LogBodies) return null;
        return http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(Category);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1901, Level = LogLevel.Information, Message = "Request {RequestId} prompt (redacted): {Prompt}")]
        public static partial void Prompt(ILogger logger, Guid requestId, string prompt);

        [LoggerMessage(EventId = 1902, Level = LogLevel.Information, Message = "Request {RequestId} answer (redacted): {Answer}")]
        public static partial void Answer(ILogger logger, Guid requestId, string answer);
    }
}
