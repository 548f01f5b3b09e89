using System.Text.Json;
using Gateway.Core.Errors;
using Gateway.Core.Wire;
using Microsoft.Extensions.Options;

namespace Gateway.Core.Validation;

/// <summary>Parses and validates an embeddings body (OpenAI's rules: model and a non-empty input; the gateway's input limit).</summary>
public sealed class EmbeddingRequestParser(IOptions<GatewayOptions> options)
{
    private readonly int _maxInputs = options.Value.MaxEmbeddingInputs;

    public (EmbeddingRequest? Value, GatewayError? Failure) Parse(ReadOnlySpan<byte> body)
    {
        var (request, failure) = RequestJson.Read(body, GatewayJsonContext.Requests.EmbeddingRequest);
        if (failure is not null) return (null, failure);
        if (string.IsNullOrEmpty(request!.Model))
            return (null, GatewayError.BadRequest("You must provide a model parameter.", "model", "missing_required_parameter"));
        if (request.Model.Length > ChatCompletionRequestValidator.MaxIdentifierLength || request.User?.Length > ChatCompletionRequestValidator.MaxIdentifierLength)
        {
            var field = request.Model.Length > ChatCompletionRequestValidator.MaxIdentifierLength ? "model" : "user";
            return (null, GatewayError.BadRequest(
                $"Invalid '{field}': string too long. Expected a string with maximum length {ChatCompletionRequestValidator.MaxIdentifierLength}.",
                field, "string_above_max_length"));
        }
        if (request.Input is { ValueKind: JsonValueKind.Array } many && many.GetArrayLength() > _maxInputs)
        {
            return (null, GatewayError.BadRequest(
                $"Invalid 'input': array too long. Expected an array with maximum length {_maxInputs}, but got an array with length {many.GetArrayLength()} instead.",
                "input", "array_above_max_length"));
        }
        var valid = request.Input switch
        {
            { ValueKind: JsonValueKind.String } s => s.GetString()!.Length > 0,
            { ValueKind: JsonValueKind.Array } a => a.GetArrayLength() > 0 && a.EnumerateArray().All(e =>
                e.ValueKind == JsonValueKind.String && e.GetString()!.Length > 0
                || IsTokenId(e)
                || e.ValueKind == JsonValueKind.Array && e.GetArrayLength() > 0 && e.EnumerateArray().All(IsTokenId)),
            _ => false,
        };
        if (!valid)
        {
            return (null, GatewayError.BadRequest(
                $"'input' must be a non-empty string, or an array of 1 to {_maxInputs} non-empty strings, token ids or token-id arrays.", "input", "invalid_value"));
        }
        if (request.Dimensions is < 1) return (null, GatewayError.BadRequest("'dimensions' must be at least 1.", "dimensions", "invalid_value"));
        if (request.EncodingFormat is not (null or "float" or "base64"))
            return (null, GatewayError.BadRequest("'encoding_format' must be 'float' or 'base64'.", "encoding_format", "invalid_value"));
        return (request, null);
    }

    // Token ids are non-negative integers; 1.5, -3 or 1e400 would reach a provider as nonsense.
    private static bool IsTokenId(JsonElement e) => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out var id) && id >= 0;
}
