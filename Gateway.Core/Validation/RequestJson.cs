using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using System.Text.Unicode;
using Gateway.Core.Errors;
using Gateway.Core.Wire;

namespace Gateway.Core.Validation;

/// <summary>
/// Reads a /v1 request body into its wire type and chooses the 400 for every way the JSON itself can be wrong:
/// empty, not UTF-8, not JSON, nested deeper than <see cref="GatewayJsonContext.MaxRequestDepth"/>, a key given twice,
/// a <c>\u</c> escape that is half a surrogate pair, a value of the wrong type, or not an object. Strings inside
/// <see cref="JsonElement"/> fields are only decoded later, so what would fail there is refused here.
/// </summary>
internal static class RequestJson
{
    public static (T? Value, GatewayError? Failure) Read<T>(ReadOnlySpan<byte> body, JsonTypeInfo<T> type) where T : class
    {
        // RFC 8259 §8.1: a parser may ignore a byte order mark, and some Windows tools send one.
        if (body.StartsWith("\uFEFF"u8)) body = body[3..];
        if (body.IsEmpty) return (null, GatewayError.BadRequest("The request body is empty; send a JSON object.", code: "invalid_json"));
        if (!Utf8.IsValid(body)) return (null, GatewayError.InvalidJson("the body is not valid UTF-8"));
        if (HasUnpairedSurrogate(body)) return (null, GatewayError.InvalidJson("a \\u escape is half of a surrogate pair"));

        T? value;
        try
        {
            value = JsonSerializer.Deserialize(body, type);
        }
        catch (JsonException ex)
        {
            return (null, Describe(ex, body));
        }
        return value is null
            ? (null, GatewayError.BadRequest("The request body must be a JSON object.", null, "invalid_type"))
            : (value, null);
    }

    // A reader error (bad syntax, too deep, cut short) wraps the reader's own JsonException; a conversion error (wrong type)
    // and a duplicate key do not. Path is "$.messages[0].role"; the body is never echoed.
    private static GatewayError Describe(JsonException ex, ReadOnlySpan<byte> body)
    {
        var path = ex.Path is { Length: > 2 } p ? p[2..] : null;
        if (ex.InnerException is JsonException)
        {
            var where = $"line {ex.LineNumber + 1}, byte {ex.BytePositionInLine + 1}";
            return SyntaxProblem(body) switch
            {
                Syntax.TooDeep => GatewayError.BadRequest(
                    $"The JSON body is nested too deeply: at most {GatewayJsonContext.MaxRequestDepth} levels of objects and arrays.", null, "invalid_json"),
                Syntax.Truncated => GatewayError.BadRequest(
                    $"The request body is not valid JSON: it ends before the JSON is complete ({where}).", null, "invalid_json"),
                _ => GatewayError.InvalidJson(where),
            };
        }
        if (ex.Message.StartsWith("Duplicate property", StringComparison.Ordinal))
            return GatewayError.BadRequest($"The JSON body has a key twice{(path is null ? "" : $" (in '{path}')")}; each key may appear once.", path, "invalid_json");
        return path is null
            ? GatewayError.BadRequest("The request body must be a JSON object.", null, "invalid_type")
            : GatewayError.BadRequest($"Invalid type for '{path}'.", path, "invalid_type");
    }

    private enum Syntax { Other, TooDeep, Truncated }

    /// <summary>
    /// Why the reader refused <paramref name="body"/>, found by reading it again rather than from the reader's message (whose
    /// wording is not an API: "Expected depth to be zero…" is a truncated body, not a deep one). The second pass has no depth
    /// limit, so nesting is counted as it goes, and reads the body as a non-final block, so a body that is only cut short
    /// runs out of data instead of failing. It runs only for bodies already refused.
    /// </summary>
    private static Syntax SyntaxProblem(ReadOnlySpan<byte> body)
    {
        var reader = new Utf8JsonReader(body, isFinalBlock: false, new JsonReaderState(new JsonReaderOptions { MaxDepth = int.MaxValue }));
        try
        {
            while (reader.Read())
            {
                // Start tokens report the depth outside them: the 65th nested object is at depth 64.
                if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray && reader.CurrentDepth >= GatewayJsonContext.MaxRequestDepth)
                    return Syntax.TooDeep;
            }
        }
        catch (JsonException)
        {
            return Syntax.Other;
        }
        // Out of data: cut short unless one whole value was read (then the reader's complaint was something else).
        return reader.CurrentDepth > 0 || reader.TokenType is JsonTokenType.None or JsonTokenType.PropertyName
               || body[(int)reader.BytesConsumed..].Trim(" \t\r\n"u8).Length > 0
            ? Syntax.Truncated
            : Syntax.Other;
    }

    // Only bodies with \u escapes pay for this second pass; a syntax error is left to the real parse to report.
    private static bool HasUnpairedSurrogate(ReadOnlySpan<byte> body)
    {
        if (body.IndexOf("\\u"u8) < 0) return false;
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = GatewayJsonContext.MaxRequestDepth });
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType is JsonTokenType.String or JsonTokenType.PropertyName && reader.ValueIsEscaped)
                    _ = reader.GetString();
            }
            return false;
        }
        catch (InvalidOperationException)
        {
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
