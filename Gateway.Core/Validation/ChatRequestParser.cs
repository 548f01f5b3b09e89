using Gateway.Core.Errors;
using Gateway.Core.Wire;
using Microsoft.Extensions.Options;

namespace Gateway.Core.Validation;

/// <summary>Parses and validates a chat-completions body once, choosing every error the client sees.</summary>
public sealed class ChatRequestParser(IOptions<GatewayOptions> options)
{
    private readonly ChatCompletionRequestValidator _validator = new(options.Value);

    public ParseResult Parse(ReadOnlySpan<byte> body)
    {
        var (request, failure) = RequestJson.Read(body, GatewayJsonContext.Requests.ChatCompletionRequest);
        if (failure is not null) return new ParseResult(null, failure);

        var result = _validator.Validate(request!);
        if (!result.IsValid)
        {
            var first = result.Errors[0];
            return new ParseResult(null, GatewayError.BadRequest(first.ErrorMessage, ToWireName(first.PropertyName), first.ErrorCode));
        }
        return new ParseResult(request, null);
    }

    private static string? ToWireName(string propertyName) => propertyName switch
    {
        "" => null,
        _ => System.Text.RegularExpressions.Regex.Replace(propertyName, "(?<=[a-z])([A-Z])", "_$1").ToLowerInvariant(),
    };
}

public readonly record struct ParseResult(ChatCompletionRequest? Value, GatewayError? Failure);
