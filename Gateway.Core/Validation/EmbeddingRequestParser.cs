using System.Text.Json;
using Gateway.Core.Errors;
using Gateway.Core.Wire;

namespace Gateway.Core.Validation;

/// <summary>Parses and validates an embeddings body (OpenAI's rules: model and a non-empty input).</summary>
public static class EmbeddingRequestParser
{
    public const int MaxInputs = 2048;

    public static (EmbeddingRequest? Value, GatewayError? Failure) Parse(ReadOnlySpan<byte> body)
    {
        if (body.IsEmpty) return (null, GatewayError.BadRequest("The request body is empty; send a JSON object.", code: "invalid_json"));
        EmbeddingRequest? request;
        try
        {
            request = JsonSerializer.Deserialize(body, GatewayJsonContext.Wire.EmbeddingRequest);
        }
        catch (JsonException ex)
        {
            return (null, ex.InnerException is JsonException
                ? GatewayError.InvalidJson($"line {ex.LineNumber + 1}, byte {ex.BytePositionInLine + 1}")
                : GatewayError.BadRequest($"Invalid type for '{(ex.Path is { Length: > 2 } p ? p[2..] : "body")}'.", ex.Path is { Length: > 2 } q ? q[2..] : null, "invalid_type"));
        }
        if (request is null) return (null, GatewayError.BadRequest("The request body must be a JSON object.", code: "invalid_type"));
        if (string.IsNullOrEmpty(request.Model))
            return (null, GatewayError.BadRequest("You must provide a model parameter.", "model", "missing_required_parameter"));
        var input = request.Input;
        var valid = input switch
        {
            { ValueKind: JsonValueKind.String } s => s.GetString()!.Length > 0,
            { ValueKind: JsonValueKind.Array } a => a.GetArrayLength() is > 0 and <= MaxInputs && a.EnumerateArray().All(e =>
                e.ValueKind == JsonValueKind.String && e.GetString()!.Length > 0
                || e.ValueKind == JsonValueKind.Number
                || e.ValueKind == JsonValueKind.Array && e.GetArrayLength() > 0 && e.EnumerateArray().All(t => t.ValueKind == JsonValueKind.Number)),
            _ => false,
        };
        if (!valid)
        {
            return (null, GatewayError.BadRequest(
                $"'input' must be a non-empty string, or an array of 1 to {MaxInputs} non-empty strings or token arrays.", "input", "invalid_value"));
        }
        if (request.Dimensions is < 1) return (null, GatewayError.BadRequest("'dimensions' must be at least 1.", "dimensions", "invalid_value"));
        if (request.EncodingFormat is not (null or "float" or "base64"))
            return (null, GatewayError.BadRequest("'encoding_format' must be 'float' or 'base64'.", "encoding_format", "invalid_value"));
        return (request, null);
    }
}
