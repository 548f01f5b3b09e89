using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Errors;

namespace Gateway.Api.Endpoints;

/// <summary>A front door's body read as a JSON object, whole, before anything acts on it.</summary>
internal static class RequestJson
{
    /// <summary>
    /// The body as a JSON object, or the 400 saying why it is not one. It is read whole now: a <see cref="JsonNode"/> finds duplicate
    /// keys and text that is not UTF-8 only when a part is first read, which would otherwise be in the middle of a translation (a
    /// 500) or, for the fields only an upstream of the door's own protocol reads, when the body is sent on.
    /// </summary>
    public static (JsonObject? Value, GatewayError? Failure) ReadObject(ReadOnlySpan<byte> body)
    {
        try
        {
            if (JsonNode.Parse(body) is not JsonObject parsed) return (null, GatewayError.BadRequest("The request body must be a JSON object."));
            ReadAll(parsed);
            return (parsed, null);
        }
        catch (Exception ex) when (ex is JsonException or ArgumentException or InvalidOperationException)
        {
            return (null, GatewayError.InvalidJson(ex is JsonException ? ex.Message : "duplicate keys or text that is not UTF-8"));
        }
    }

    private static void ReadAll(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject fields:
                foreach (var (_, value) in fields) ReadAll(value);
                break;
            case JsonArray items:
                foreach (var item in items) ReadAll(item);
                break;
            case JsonValue value when value.GetValueKind() == JsonValueKind.String:
                _ = value.GetValue<string>();
                break;
        }
    }
}
