using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Gateway.Core.Wire;

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
/// Every non-streaming answer goes through here, so it reads each chunk forward with a <see cref="Utf8JsonReader"/> (a
/// <c>JsonDocument</c> per chunk was a tenth of the gateway's CPU per request), keeps the fields it does not join as their raw JSON, and
/// writes the answer with one <see cref="Utf8JsonWriter"/>.
/// </remarks>
public sealed class CompletionAssembler
{
    private static readonly JsonWriterOptions Writing = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly List<(string Name, byte[] Utf8Name, byte[] Raw)> _top = []; // first non-null value of each top-level field, in order seen
    private readonly SortedDictionary<int, Choice> _choices = [];
    private byte[]? _usage;
    private readonly ChunkEnvelope _envelope = new(); // every chunk repeats it: read once, then skipped while the bytes are the same

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
    public void Add(ReadOnlyMemory<byte> chunk) => Read(chunk.Span, null, needModel: false);

    /// <summary>
    /// Adds one chunk and says what the stream reader meters in it (<see cref="ChunkFacts"/>), so that a stream being assembled
    /// is read once: <paramref name="produced"/> gets the chunk's delta content and its tool calls as written, as the reader keeps
    /// them for an estimate. Until the stream knows its served model (<paramref name="needModel"/>), the chunk's last string
    /// <c>model</c> is noted, as the reader takes it. Throws <see cref="JsonException"/> when the chunk is not one JSON value; a JSON
    /// value that is not an object adds nothing.
    /// </summary>
    internal ChunkFacts Read(ReadOnlySpan<byte> data, StringBuilder? produced, bool needModel)
    {
        var facts = new ChunkFacts();
        var reader = _envelope.Open(data, out var skipped);
        var atChoices = skipped > 0; // past a repeated envelope: on the choices property
        if (!atChoices && (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)) return facts;
        var rest = data[skipped..]; // what the reader's positions are relative to
        facts.IsObject = true;
        var envelope = !atChoices; // no property read so far has an effect the second time (ChunkEnvelope.Keep)
        while (atChoices || reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (atChoices || reader.ValueTextEquals("choices"u8))
            {
                if (envelope) _envelope.Keep(data, reader);
                atChoices = envelope = false;
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    reader.Skip();
                    continue;
                }
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    facts.HasChoices = true;
                    if (reader.TokenType == JsonTokenType.StartObject) AddChoice(ref reader, rest, ref facts, produced);
                    else reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                envelope = false;
                reader.Read();
                if (reader.TokenType == JsonTokenType.Null) continue;
                var start = (int)reader.TokenStartIndex;
                var isObject = reader.TokenType == JsonTokenType.StartObject;
                _usage = Raw(ref reader, rest);
                if (isObject) facts.Usage = (skipped + start)..(skipped + (int)reader.BytesConsumed);
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                envelope = false;
                reader.Read();
                facts.IsError |= reader.TokenType == JsonTokenType.StartObject; // an error event, which ends the stream: no part of an answer
                reader.Skip();
            }
            else if (needModel && reader.ValueTextEquals("model"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String) facts.Model = reader.GetString();
                if (reader.TokenType == JsonTokenType.Null || Top("model") is not null) reader.Skip();
                else _top.Add(("model", "model"u8.ToArray(), Raw(ref reader, rest))); // the first non-null, as any top-level field
            }
            else if (reader.ValueTextEquals("object"u8) || reader.ValueTextEquals("obfuscation"u8) // padding of each chunk against side channels
                || HasTop(ref reader))
            {
                reader.Read();
                reader.Skip();
            }
            else
            {
                var name = reader.GetString()!;
                reader.Read();
                if (reader.TokenType != JsonTokenType.Null) _top.Add((name, Encoding.UTF8.GetBytes(name), Raw(ref reader, rest)));
            }
        }
        if (reader.Read()) throw new JsonException("content after the chunk"); // the reader throws on anything else
        return facts;
    }

    // At the choice's StartObject.
    private void AddChoice(ref Utf8JsonReader reader, ReadOnlySpan<byte> data, ref ChunkFacts facts, StringBuilder? produced)
    {
        var index = IndexAhead(reader) ?? 0;
        if (!_choices.TryGetValue(index, out var state)) _choices[index] = state = new Choice();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("index"u8) || reader.ValueTextEquals("logprobs"u8))
            {
                reader.Read();
                reader.Skip();
                continue;
            }
            if (reader.ValueTextEquals("delta"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject) AddDelta(state, ref reader, data, ref facts, produced);
                else reader.Skip();
                continue;
            }
            var name = Name(ref reader);
            reader.Read();
            if (reader.TokenType != JsonTokenType.Null) state.Fields[name] = Raw(ref reader, data);
            else state.Fields.TryAdd(name, null);
        }
    }

    private static void AddDelta(Choice state, ref Utf8JsonReader reader, ReadOnlySpan<byte> data, ref ChunkFacts facts, StringBuilder? produced)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("tool_calls"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartArray)
                {
                    var start = (int)reader.TokenStartIndex;
                    AddToolCalls(state, ref reader);
                    produced?.Append(Encoding.UTF8.GetString(data[start..(int)reader.BytesConsumed])); // as written
                    facts.HasContent = facts.HasToolCall = true;
                }
                else reader.Skip();
                state.Seen("tool_calls");
                continue;
            }
            var name = Name(ref reader);
            state.Seen(name);
            reader.Read();
            if (reader.TokenType == JsonTokenType.String)
            {
                if (!state.Text.TryGetValue(name, out var buffer)) state.Text[name] = buffer = new StringBuilder(name == "content" ? TextCapacity : 16);
                if (name == "content" && reader.ValueSpan.Length > 0)
                {
                    var before = buffer.Length;
                    JsonText.Append(buffer, ref reader);
                    produced?.Append(buffer, before, buffer.Length - before);
                    facts.HasContent = true;
                }
                else if (name != "role" || buffer.Length == 0) JsonText.Append(buffer, ref reader); // the role is said once, not joined
            }
            else if (reader.TokenType != JsonTokenType.Null)
            {
                state.Other[name] = Raw(ref reader, data);
            }
            else
            {
                state.Other.TryAdd(name, null);
            }
        }
    }

    // At the tool_calls array's StartArray.
    private static void AddToolCalls(Choice state, ref Utf8JsonReader reader)
    {
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                continue;
            }
            var index = IndexAhead(reader) ?? state.Tools.Count;
            var id = IdAhead(reader);
            if (!state.ToolAt.TryGetValue(index, out var tool) || id is not null && tool.Id is not null && id != tool.Id)
            {
                state.Tools.Add(tool = new ToolCall(index));
                state.ToolAt[index] = tool;
            }
            tool.Id ??= id;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String) tool.Type = reader.ValueTextEquals("function"u8) ? "function" : reader.GetString()!;
                    else reader.Skip();
                }
                else if (reader.ValueTextEquals("function"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject) AddFunction(tool, ref reader);
                    else reader.Skip();
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
        }
    }

    private static void AddFunction(ToolCall tool, ref Utf8JsonReader reader)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isName = reader.ValueTextEquals("name"u8);
            var isArguments = !isName && reader.ValueTextEquals("arguments"u8);
            reader.Read();
            if (reader.TokenType != JsonTokenType.String) reader.Skip();
            else if (isName && tool.Name is null && reader.ValueSpan.Length > 0) tool.Name = reader.GetString();
            else if (isArguments) JsonText.Append(tool.Arguments, ref reader);
        }
    }

    // An object's "index" and a tool call's non-empty "id", read ahead in a copy of the reader (at the object's StartObject), which
    // stays where it is: they decide where the rest of the object goes, wherever the object writes them.
    private static int? IndexAhead(Utf8JsonReader ahead) =>
        ToFieldAhead(ref ahead, "index"u8) && ahead.TokenType == JsonTokenType.Number && ahead.TryGetInt32(out var n) ? n : null;

    private static string? IdAhead(Utf8JsonReader ahead) =>
        ToFieldAhead(ref ahead, "id"u8) && ahead.TokenType == JsonTokenType.String && ahead.ValueSpan.Length > 0 ? ahead.GetString() : null;

    // Moves the copy onto the value of the object's field; false when the object has none.
    private static bool ToFieldAhead(ref Utf8JsonReader ahead, ReadOnlySpan<byte> field)
    {
        while (ahead.Read() && ahead.TokenType == JsonTokenType.PropertyName)
        {
            var found = ahead.ValueTextEquals(field);
            ahead.Read();
            if (found) return true;
            ahead.Skip();
        }
        return false;
    }

    /// <summary>The assembled <c>chat.completion</c>.</summary>
    /// <param name="servedModel">The model the provider said it served, when the stream said it elsewhere than in its chunks.</param>
    public byte[] Build(string? servedModel = null)
    {
        // Written into this thread's buffer, so the answer's one allocation is its final array.
        var output = t_output ??= new ArrayBufferWriter<byte>(2048);
        output.ResetWrittenCount();
        var writer = t_writer ??= new Utf8JsonWriter(output, Writing);
        writer.Reset(output);
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
        foreach (var (name, _, raw) in _top)
            if (name is not ("id" or "created" or "model")) WriteRaw(writer, name, raw);
        writer.WriteEndObject();
        writer.Flush();
        var answer = output.WrittenSpan.ToArray();
        if (output.Capacity > KeptBufferAtMost) (t_output, t_writer) = (null, null); // a rare long answer's buffer is not kept by the thread
        return answer;
    }

    private const int KeptBufferAtMost = 64 * 1024;

    [ThreadStatic] private static ArrayBufferWriter<byte>? t_output;
    [ThreadStatic] private static Utf8JsonWriter? t_writer;

    /// <summary>A text field's first buffer, in characters: most answers fit, so joining deltas seldom grows it.</summary>
    internal const int TextCapacity = 256;

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

    private bool HasTop(ref Utf8JsonReader reader)
    {
        foreach (var (_, utf8, _) in _top)
            if (reader.ValueTextEquals(utf8)) return true;
        return false;
    }

    private byte[]? Top(string name)
    {
        foreach (var (known, _, raw) in _top)
            if (known == name) return raw;
        return null;
    }

    private static void WriteRaw(Utf8JsonWriter writer, string name, byte[]? raw)
    {
        writer.WritePropertyName(name);
        if (raw is null) writer.WriteNullValue();
        else writer.WriteRawValue(raw, skipInputValidation: true); // a value the parser already read whole
    }

    // The value at the reader as written (a container whole), and the reader past it.
    private static byte[] Raw(ref Utf8JsonReader reader, ReadOnlySpan<byte> data)
    {
        var start = (int)reader.TokenStartIndex;
        reader.Skip();
        return data[start..(int)reader.BytesConsumed].ToArray();
    }

    // The names every chunk repeats, without a new string each time.
    private static string Name(ref Utf8JsonReader reader) =>
        reader.ValueTextEquals("content"u8) ? "content"
        : reader.ValueTextEquals("role"u8) ? "role"
        : reader.ValueTextEquals("finish_reason"u8) ? "finish_reason"
        : reader.ValueTextEquals("refusal"u8) ? "refusal"
        : reader.ValueTextEquals("reasoning_content"u8) ? "reasoning_content"
        : reader.GetString()!;
}
