using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Gateway.Core.Chat;

/// <summary>
/// Builds one <c>chat.completion</c> from the <c>chat.completion.chunk</c>s of a stream, for a non-streaming request that was
/// called streaming (so that it has a first-token deadline). Nothing the provider said is lost: string fields of a delta
/// (<c>content</c>, <c>refusal</c>, <c>reasoning_content</c>, any other) are joined, tool calls are joined by index (their
/// arguments concatenated; a call with an id of its own at an index another call holds is a new call, as Ollama and some vLLM
/// builds number every call of a parallel batch 0), other delta and choice fields keep their last non-null value, and
/// top-level fields the gateway does not know (<c>system_fingerprint</c>, <c>service_tier</c>, …) keep their first; OpenAI's
/// per-chunk padding (<c>obfuscation</c>) is no part of an answer. Text is built in one buffer per field, so a long answer
/// costs linear time.
/// </summary>
/// <remarks>
/// Every non-streaming answer goes through here, so it reads chunks with a pooled <see cref="JsonDocument"/>, keeps the fields
/// it does not join as their raw JSON, and writes the answer with one <see cref="Utf8JsonWriter"/>: no JSON tree per chunk
/// (building <c>JsonNode</c>s here was the largest share of the gateway's allocations per request).
/// </remarks>
public sealed class CompletionAssembler
{
    private static readonly JsonWriterOptions Writing = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly List<(string Name, byte[] Raw)> _top = []; // first non-null value of each top-level field, in order seen
    private readonly SortedDictionary<int, Choice> _choices = [];
    private byte[]? _usage;

    private sealed class Choice
    {
        public readonly Dictionary<string, StringBuilder> Text = new(StringComparer.Ordinal);
        public readonly Dictionary<string, byte[]?> Other = new(StringComparer.Ordinal); // raw JSON; null for JSON null
        public readonly List<string> Order = [];
        public readonly List<ToolCall> Tools = []; // in the order they began
        public readonly Dictionary<int, ToolCall> ToolAt = []; // the call an index continues
        public readonly Dictionary<string, byte[]?> Fields = new(StringComparer.Ordinal);

        public void Seen(string name)
        {
            if (!Order.Contains(name)) Order.Add(name);
        }
    }

    private sealed class ToolCall(int index)
    {
        public readonly int Index = index;
        public string? Id;
        public string Type = "function";
        public string? Name;
        public readonly StringBuilder Arguments = new();
    }

    /// <summary>Adds one chunk (its JSON as the stream carried it).</summary>
    public void Add(ReadOnlyMemory<byte> chunk)
    {
        using var doc = JsonDocument.Parse(chunk);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) return;
        foreach (var property in root.EnumerateObject())
        {
            var value = property.Value;
            if (property.NameEquals("choices"u8))
            {
                if (value.ValueKind != JsonValueKind.Array) continue;
                foreach (var item in value.EnumerateArray())
                    if (item.ValueKind == JsonValueKind.Object) AddChoice(item);
            }
            else if (property.NameEquals("usage"u8))
            {
                if (value.ValueKind != JsonValueKind.Null) _usage = Raw(value);
            }
            else if (!property.NameEquals("object"u8) && !property.NameEquals("obfuscation"u8) // padding of each chunk against side channels
                && value.ValueKind != JsonValueKind.Null && !HasTop(property))
            {
                _top.Add((property.Name, Raw(value)));
            }
        }
    }

    private void AddChoice(JsonElement choice)
    {
        var index = choice.TryGetProperty("index"u8, out var i) && i.ValueKind == JsonValueKind.Number && i.TryGetInt32(out var n) ? n : 0;
        if (!_choices.TryGetValue(index, out var state)) _choices[index] = state = new Choice();
        foreach (var property in choice.EnumerateObject())
        {
            if (property.NameEquals("index"u8) || property.NameEquals("logprobs"u8)) continue;
            if (property.NameEquals("delta"u8))
            {
                if (property.Value.ValueKind == JsonValueKind.Object) AddDelta(state, property.Value);
                continue;
            }
            var name = Name(property);
            if (property.Value.ValueKind != JsonValueKind.Null) state.Fields[name] = Raw(property.Value);
            else state.Fields.TryAdd(name, null);
        }
    }

    private static void AddDelta(Choice state, JsonElement delta)
    {
        foreach (var property in delta.EnumerateObject())
        {
            var value = property.Value;
            if (property.NameEquals("tool_calls"u8))
            {
                if (value.ValueKind == JsonValueKind.Array) AddToolCalls(state, value);
                state.Seen("tool_calls");
                continue;
            }
            var name = Name(property);
            state.Seen(name);
            if (value.ValueKind == JsonValueKind.String)
            {
                if (!state.Text.TryGetValue(name, out var buffer)) state.Text[name] = buffer = new StringBuilder();
                if (name != "role" || buffer.Length == 0) AppendString(buffer, value); // the role is said once, not joined
            }
            else if (value.ValueKind != JsonValueKind.Null)
            {
                state.Other[name] = Raw(value);
            }
            else
            {
                state.Other.TryAdd(name, null);
            }
        }
    }

    private static void AddToolCalls(Choice state, JsonElement calls)
    {
        foreach (var call in calls.EnumerateArray())
        {
            if (call.ValueKind != JsonValueKind.Object) continue;
            var index = call.TryGetProperty("index"u8, out var i) && i.ValueKind == JsonValueKind.Number && i.TryGetInt32(out var n) ? n : state.Tools.Count;
            var id = Str(call, "id"u8) is { Length: > 0 } idText ? idText : null;
            if (!state.ToolAt.TryGetValue(index, out var tool) || id is not null && tool.Id is not null && id != tool.Id)
            {
                state.Tools.Add(tool = new ToolCall(index));
                state.ToolAt[index] = tool;
            }
            tool.Id ??= id;
            if (Str(call, "type"u8) is { } type) tool.Type = type;
            if (call.TryGetProperty("function"u8, out var function) && function.ValueKind == JsonValueKind.Object)
            {
                if (Str(function, "name"u8) is { Length: > 0 } name) tool.Name ??= name;
                if (function.TryGetProperty("arguments"u8, out var arguments) && arguments.ValueKind == JsonValueKind.String)
                    AppendString(tool.Arguments, arguments);
            }
        }
    }

    /// <summary>The assembled <c>chat.completion</c>.</summary>
    /// <param name="servedModel">The model the provider said it served, when the stream said it elsewhere than in its chunks.</param>
    public byte[] Build(string? servedModel = null)
    {
        var output = new ArrayBufferWriter<byte>(512);
        using (var writer = new Utf8JsonWriter(output, Writing))
        {
            writer.WriteStartObject();
            WriteRaw(writer, "id", Top("id"));
            writer.WriteString("object"u8, "chat.completion"u8);
            WriteRaw(writer, "created", Top("created"));
            if (servedModel is not null) writer.WriteString("model"u8, servedModel);
            else WriteRaw(writer, "model", Top("model"));
            writer.WriteStartArray("choices"u8);
            foreach (var (index, state) in _choices) WriteChoice(writer, index, state);
            writer.WriteEndArray();
            WriteRaw(writer, "usage", _usage);
            foreach (var (name, raw) in _top)
                if (name is not ("id" or "created" or "model")) WriteRaw(writer, name, raw);
            writer.WriteEndObject();
        }
        return output.WrittenSpan.ToArray();
    }

    private static void WriteChoice(Utf8JsonWriter writer, int index, Choice state)
    {
        writer.WriteStartObject();
        writer.WriteNumber("index"u8, index);
        writer.WriteStartObject("message"u8);
        writer.WriteString("role"u8, state.Text.TryGetValue("role", out var role) ? role.ToString() : "assistant");
        // As OpenAI answers: null content beside tool calls when nothing was said.
        if (state.Text.TryGetValue("content", out var content) && (content.Length > 0 || state.Tools.Count == 0)) writer.WriteString("content"u8, content.ToString());
        else writer.WriteNull("content"u8);
        foreach (var name in state.Order)
        {
            if (name is "role" or "content") continue;
            if (name == "tool_calls")
            {
                if (state.Tools.Count == 0) continue;
                writer.WriteStartArray("tool_calls"u8);
                foreach (var tool in state.Tools.OrderBy(t => t.Index))
                {
                    writer.WriteStartObject();
                    if (tool.Id is null) writer.WriteNull("id"u8);
                    else writer.WriteString("id"u8, tool.Id);
                    writer.WriteString("type"u8, tool.Type);
                    writer.WriteStartObject("function"u8);
                    if (tool.Name is null) writer.WriteNull("name"u8);
                    else writer.WriteString("name"u8, tool.Name);
                    writer.WriteString("arguments"u8, tool.Arguments.ToString());
                    writer.WriteEndObject();
                    writer.WriteEndObject();
                }
                writer.WriteEndArray();
                continue;
            }
            if (state.Text.TryGetValue(name, out var text)) writer.WriteString(name, text.ToString());
            else WriteRaw(writer, name, state.Other.GetValueOrDefault(name));
        }
        writer.WriteEndObject();
        writer.WriteNull("logprobs"u8);
        foreach (var (name, raw) in state.Fields)
            if (name is not ("message" or "index")) WriteRaw(writer, name, raw);
        if (!state.Fields.ContainsKey("finish_reason")) writer.WriteNull("finish_reason"u8);
        writer.WriteEndObject();
    }

    private bool HasTop(JsonProperty property)
    {
        foreach (var (name, _) in _top)
            if (property.NameEquals(name)) return true;
        return false;
    }

    private byte[]? Top(string name)
    {
        foreach (var (known, raw) in _top)
            if (known == name) return raw;
        return null;
    }

    private static void WriteRaw(Utf8JsonWriter writer, string name, byte[]? raw)
    {
        writer.WritePropertyName(name);
        if (raw is null) writer.WriteNullValue();
        else writer.WriteRawValue(raw, skipInputValidation: true); // a value the parser already read whole
    }

    private static byte[] Raw(JsonElement value) => JsonMarshal.GetRawUtf8Value(value).ToArray();

    // A string value's text onto the buffer, without a string of its own when it has no escapes (every chunk's text goes through here).
    private static void AppendString(StringBuilder buffer, JsonElement value)
    {
        var raw = JsonMarshal.GetRawUtf8Value(value); // with its quotes
        var utf8 = raw[1..^1];
        if (utf8.Contains((byte)'\\') || utf8.Length > 1024)
        {
            buffer.Append(value.GetString());
            return;
        }
        Span<char> chars = stackalloc char[1024]; // UTF-16 units never outnumber the UTF-8 bytes they come from
        buffer.Append(chars[..Encoding.UTF8.GetChars(utf8, chars)]);
    }

    private static string? Str(JsonElement node, ReadOnlySpan<byte> name) =>
        node.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    // The names every chunk repeats, without a new string each time.
    private static string Name(JsonProperty property) =>
        property.NameEquals("content"u8) ? "content"
        : property.NameEquals("role"u8) ? "role"
        : property.NameEquals("finish_reason"u8) ? "finish_reason"
        : property.NameEquals("refusal"u8) ? "refusal"
        : property.NameEquals("reasoning_content"u8) ? "reasoning_content"
        : property.Name;
}
