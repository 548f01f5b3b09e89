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

    // JsonException.Path is "$.messages[0].role"; the message names the place, never echoes the body.
    private static GatewayError Describe(JsonException ex)
    {
        var path = ex.Path is { Length: > 2 } p ? p[2..] : null;
        if (path is null || ex.Message.Contains("invalid", StringComparison.OrdinalIgnoreCase) && ex.Message.Contains("character", StringComparison.OrdinalIgnoreCase))
            return GatewayError.InvalidJson($"line {ex.LineNumber + 1}, byte {ex.BytePositionInLine + 1}");
        if (ex.Message.Contains("maximum configured depth", StringComparison.Ordinal))
            return GatewayError.BadRequest("The JSON body is nested too deeply.", path, "invalid_json");
        return GatewayError.BadRequest($"Invalid type or value for '{path}'.", path, "invalid_type");
    }

    private static string? ToWireName(string propertyName) => propertyName switch
    {
        "" => null,
        _ => System.Text.RegularExpressions.Regex.Replace(propertyName, "(?<=[a-z])([A-Z])", "_$1").ToLowerInvariant(),
    };
}

public readonly record struct ParseResult(ChatCompletionRequest? Value, GatewayError? Failure);
