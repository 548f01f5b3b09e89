using Gateway.Core;
using Gateway.Core.Logging;
using Gateway.Core.Wire;
using Microsoft.Extensions.Options;

namespace Gateway.Api.Endpoints;

/// <summary>
/// Prompt and answer text in the logs, only with <c>Gateway:LogBodies</c> on, and always redacted first (personal data,
/// card numbers, national ids, API-key-like strings, JSON Web Tokens, password/secret/token values). Category <c>Gateway.Bodies</c>, so a sink can route or drop it.
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

    /// <summary>A non-streamed answer: OpenAI-compatible ones pass through unparsed, so their text is read from the body here.</summary>
    public static void Answer(HttpContext http, Guid requestId, Gateway.Core.Providers.UpstreamCompletion completion)
    {
        if (Logger(http) is not { } logger || !logger.IsEnabled(LogLevel.Information)) return;
        var redacted = Redactor.Redact(completion.Text is { Length: > 0 } text ? text : TextOf(completion.Body));
        Log.Answer(logger, requestId, redacted);
    }

    // Every choice's message content of a chat.completion; empty when the body is not one.
    private static string TextOf(ReadOnlyMemory<byte> body)
    {
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(body);
            if (!doc.RootElement.TryGetProperty("choices", out var choices) || choices.ValueKind != System.Text.Json.JsonValueKind.Array) return "";
            return string.Join("\n", choices.EnumerateArray()
                .Select(c => c.TryGetProperty("message", out var m) && m.ValueKind == System.Text.Json.JsonValueKind.Object
                    && m.TryGetProperty("content", out var content) && content.ValueKind == System.Text.Json.JsonValueKind.String ? content.GetString() : null)
                .Where(t => t is not null));
        }
        catch (System.Text.Json.JsonException)
        {
            return "";
        }
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
