using System.Text.Json;
using Gateway.Core.Errors;
using Gateway.Core.Wire;

namespace Gateway.Core.Validation;

/// <summary>Parses and validates a chat-completions body once, choosing every error the client sees.</summary>
public static class ChatRequestParser
{
    private static readonly ChatCompletionRequestValidator Validator = new();

    public static ParseResult Parse(ReadOnlySpan<byte> body)
    {
        if (body.IsEmpty)
            return new ParseResult(null, GatewayError.BadRequest("The request body is empty; send a JSON object.", code: "invalid_json"));

        ChatCompletionRequest? request;
        try
        {
            request = JsonSerializer.Deserialize(body, GatewayJsonContext.Wire.ChatCompletionRequest);
        }
        catch (JsonException ex)
        {
            return new ParseResult(null, Describe(ex));
        }

        if (request is null)
            return new ParseResult(null, GatewayError.BadRequest("The request body must be a JSON object.", code: "invalid_json"));

        var result = Validator.Validate(request);
        if (!result.IsValid)
        {
            var first = result.Errors[0];
            return new ParseResult(null, GatewayError.BadRequest(first.ErrorMessage, ToWireName(first.PropertyName), first.ErrorCode));
        }
        return new ParseResult(request, null);
    }

    // A reader error (bad syntax, too deep) comes wrapped around the reader's own JsonException; a
    // conversion error (wrong type) does not. Path is "$.messages[0].role"; the body is never echoed.
    private static GatewayError Describe(JsonException ex)
    {
        if (ex.InnerException is JsonException)
        {
            return ex.Message.Contains("depth", StringComparison.OrdinalIgnoreCase)
                ? GatewayError.BadRequest("The JSON body is nested too deeply.", null, "invalid_json")
                : GatewayError.InvalidJson($"line {ex.LineNumber + 1}, byte {ex.BytePositionInLine + 1}");
        }
        var path = ex.Path is { Length: > 2 } p ? p[2..] : null;
        return path is null
            ? GatewayError.BadRequest("The request body must be a JSON object.", null, "invalid_type")
            : GatewayError.BadRequest($"Invalid type for '{path}'.", path, "invalid_type");
    }

    private static string? ToWireName(string propertyName) => propertyName switch
    {
        "" => null,
        _ => System.Text.RegularExpressions.Regex.Replace(propertyName, "(?<=[a-z])([A-Z])", "_$1").ToLowerInvariant(),
    };
}

public readonly record struct ParseResult(ChatCompletionRequest? Value, GatewayError? Failure);
