using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Errors;

namespace Gateway.Core.Providers.Gemini;

/// <summary>
/// Converts a JSON Schema (as OpenAI clients write them) to the OpenAPI subset Gemini's
/// <c>parameters</c> and <c>responseSchema</c> accept. Gemini answers 400 "Unknown name … Cannot find
/// field" for any other keyword (additionalProperties, $schema, $ref, const, exclusiveMinimum…), so:
/// <c>$ref</c> is inlined from <c>$defs</c>/<c>definitions</c>, <c>const</c> becomes a one-value enum,
/// <c>oneOf</c> becomes <c>anyOf</c>, a <c>["x","null"]</c> type becomes <c>nullable</c>, and the rest is dropped.
/// Field list: https://ai.google.dev/api/caching#Schema.
/// </summary>
internal static class GeminiSchema
{
    private const int MaxDepth = 32;

    private static readonly HashSet<string> Copied =
    [
        "title", "description", "nullable", "minItems", "maxItems", "minProperties", "maxProperties",
        "minLength", "maxLength", "pattern", "minimum", "maximum", "default", "example", "propertyOrdering",
    ];

    private static readonly HashSet<string> Formats = ["enum", "date-time", "float", "double", "int32", "int64"];

    public static JsonObject Convert(JsonElement schema) => Convert(schema, schema, 0);

    private static JsonObject Convert(JsonElement schema, JsonElement root, int depth)
    {
        if (depth > MaxDepth) throw Invalid("the schema is nested too deeply (or its $ref is recursive)");
        if (schema.ValueKind != JsonValueKind.Object) return [];
        if (schema.TryGetProperty("$ref", out var reference) && reference.ValueKind == JsonValueKind.String)
        {
            var resolved = Convert(Resolve(reference.GetString()!, root), root, depth + 1);
            if (OpenAIRequestView.Str(schema, "description") is { } description) resolved["description"] = description;
            return resolved;
        }

        var result = new JsonObject();
        foreach (var property in schema.EnumerateObject())
        {
            var value = property.Value;
            switch (property.Name)
            {
                case "type" when value.ValueKind == JsonValueKind.String:
                    result["type"] = value.GetString()!.ToUpperInvariant();
                    break;
                case "type" when value.ValueKind == JsonValueKind.Array:
                    var types = value.EnumerateArray().Select(t => t.ValueKind == JsonValueKind.String ? t.GetString() : throw Invalid("'type' arrays must hold type names")).ToList();
                    if (types.Contains("null")) result["nullable"] = true;
                    if (types.FirstOrDefault(t => t != "null") is { } type) result["type"] = type.ToUpperInvariant();
                    break;
                case "format" when value.ValueKind == JsonValueKind.String && Formats.Contains(value.GetString()!):
                    result["format"] = value.GetString();
                    break;
                case "enum" when value.ValueKind == JsonValueKind.Array:
                    result["enum"] = new JsonArray([.. value.EnumerateArray().Select(v => (JsonNode?)JsonValue.Create(Scalar(v)))]);
                    break;
                case "const":
                    result["enum"] = new JsonArray(JsonValue.Create(Scalar(value)));
                    break;
                case "items" when value.ValueKind == JsonValueKind.Object:
                    result["items"] = Convert(value, root, depth + 1);
                    break;
                case "properties" when value.ValueKind == JsonValueKind.Object:
                    var properties = new JsonObject();
                    foreach (var p in value.EnumerateObject()) properties[p.Name] = Convert(p.Value, root, depth + 1);
                    result["properties"] = properties;
                    break;
                case "required" when value.ValueKind == JsonValueKind.Array:
                    result["required"] = JsonNode.Parse(value.GetRawText());
                    break;
                case "anyOf" or "oneOf" when value.ValueKind == JsonValueKind.Array:
                    var options = new JsonArray();
                    foreach (var option in value.EnumerateArray())
                    {
                        if (OpenAIRequestView.Str(option, "type") == "null") result["nullable"] = true;
                        else options.Add((JsonNode)Convert(option, root, depth + 1));
                    }
                    if (options.Count == 1) Merge(result, (JsonObject)options[0]!);
                    else if (options.Count > 1) result["anyOf"] = options;
                    break;
                case "allOf" when value.ValueKind == JsonValueKind.Array:
                    foreach (var part in value.EnumerateArray()) Merge(result, Convert(part, root, depth + 1));
                    break;
                default:
                    if (Copied.Contains(property.Name)) result[property.Name] = JsonNode.Parse(value.GetRawText());
                    break; // additionalProperties, $schema, $defs, strict, exclusiveMinimum, multipleOf, …: not in Gemini's Schema
            }
        }
        if (result["enum"] is not null && result["type"] is null) result["type"] = "STRING";
        // Gemini refuses an ARRAY without items ("missing field"); JSON Schema allows it, meaning "anything".
        if (result["type"]?.GetValue<string>() == "ARRAY" && result["items"] is null) result["items"] = new JsonObject { ["type"] = "STRING" };
        if (result["enum"] is not null) result["format"] = "enum";
        return result;
    }

    // Gemini's enum holds strings only.
    private static string Scalar(JsonElement value) => value.ValueKind == JsonValueKind.String ? value.GetString()! : value.GetRawText();

    private static void Merge(JsonObject into, JsonObject from)
    {
        foreach (var (key, value) in from.ToList())
        {
            if (key == "properties" && into["properties"] is JsonObject existing && value is JsonObject more)
            {
                foreach (var (name, schema) in more.ToList()) existing[name] ??= schema?.DeepClone();
            }
            else if (key == "required" && into["required"] is JsonArray required && value is JsonArray extra)
            {
                foreach (var name in extra) required.Add(name?.DeepClone());
            }
            else
            {
                into[key] ??= value?.DeepClone();
            }
        }
    }

    private static JsonElement Resolve(string reference, JsonElement root)
    {
        // Local references only: "#/$defs/Name" or "#/definitions/Name".
        var path = reference.StartsWith("#/", StringComparison.Ordinal) ? reference[2..].Split('/') : null;
        var current = root;
        foreach (var segment in path ?? throw Invalid($"only local $ref are supported, not '{reference}'"))
        {
            if (current.ValueKind != JsonValueKind.Object || !current.TryGetProperty(segment.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal), out current))
                throw Invalid($"$ref '{reference}' does not resolve");
        }
        return current;
    }

    private static RequestMappingException Invalid(string problem) =>
        new(GatewayError.BadRequest($"Invalid JSON schema for Gemini: {problem}.", "tools", "invalid_schema"));
}
