using Gateway.Core.Wire;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Gateway.Core.Logging;

/// <summary>
/// Prompt and answer text in the logs, only with <c>Gateway:LogBodies</c> on, and always redacted first (personal data,
/// card numbers, national ids, API-key-like strings, JSON Web Tokens, password/secret/token values). Category <c>Gateway.Bodies</c>, so a sink can route or drop it.
/// </summary>
public sealed partial class BodyLog(IOptions<GatewayOptions> options, ILoggerFactory loggers)
{
    public const string Category = "Gateway.Bodies";

    public void Prompt(Guid requestId, ChatCompletionRequest request)
    {
        if (Logger() is not { } logger || !logger.IsEnabled(LogLevel.Information)) return;
        var redacted = Redactor.Redact(string.Join("\n", request.Messages!.Select(m => $"{m.Role}: {m.Text()}")));
        Log.Prompt(logger, requestId, redacted);
    }

    public void Answer(Guid requestId, string text)
    {
        if (Logger() is not { } logger || !logger.IsEnabled(LogLevel.Information)) return;
        var redacted = Redactor.Redact(text);
        Log.Answer(logger, requestId, redacted);
    }

    /// <summary>A streamed answer's text as it was joined; made a string only when it is logged.</summary>
    public void Answer(Guid requestId, System.Text.StringBuilder text)
    {
        if (Logger() is not { } logger || !logger.IsEnabled(LogLevel.Information)) return;
        var redacted = Redactor.Redact(text.ToString());
        Log.Answer(logger, requestId, redacted);
    }

    /// <summary>A non-streamed answer: OpenAI-compatible ones pass through unparsed, so their text is read from the body here.</summary>
    public void Answer(Guid requestId, Providers.UpstreamCompletion completion)
    {
        if (Logger() is not { } logger || !logger.IsEnabled(LogLevel.Information)) return;
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

    private readonly ILogger _logger = loggers.CreateLogger(Category);

    private ILogger? Logger() => options.Value.LogBodies ? _logger : null;

    private static partial class Log
    {
        [LoggerMessage(EventId = 1901, Level = LogLevel.Information, Message = "Request {RequestId} prompt (redacted): {Prompt}")]
        public static partial void Prompt(ILogger logger, Guid requestId, string prompt);

        [LoggerMessage(EventId = 1902, Level = LogLevel.Information, Message = "Request {RequestId} answer (redacted): {Answer}")]
        public static partial void Answer(ILogger logger, Guid requestId, string answer);
    }
}
