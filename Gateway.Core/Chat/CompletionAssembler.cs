using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
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
public sealed class CompletionAssembler
{
    private readonly JsonObject _top = [];
    private readonly SortedDictionary<int, Choice> _choices = [];
    private JsonNode? _usage;

    private sealed class Choice
    {
        public readonly Dictionary<string, StringBuilder> Text = new(StringComparer.Ordinal);
        public readonly Dictionary<string, JsonNode?> Other = new(StringComparer.Ordinal);
        public readonly List<string> Order = [];
        public readonly List<ToolCall> Tools = []; // in the order they began
        public readonly Dictionary<int, ToolCall> ToolAt = []; // the call an index continues
        public readonly Dictionary<string, JsonNode?> Fields = new(StringComparer.Ordinal);

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
        if (JsonNode.Parse(chunk.Span) is not JsonObject node) return;
        foreach (var (name, value) in node)
        {
            switch (name)
            {
                case "choices" when value is JsonArray choices:
                    foreach (var item in choices)
                        if (item is JsonObject choice) AddChoice(choice);
                    break;
                case "choices" or "object" or "obfuscation": // padding of each chunk against side channels
                    break;
                case "usage":
                    if (value is not null) _usage = value.DeepClone();
                    break;
                default:
                    if (value is not null && _top[name] is null) _top[name] = value.DeepClone();
                    break;
            }
        }
    }

    private void AddChoice(JsonObject choice)
    {
        var index = choice["index"] is JsonValue i && i.TryGetValue<int>(out var n) ? n : 0;
        if (!_choices.TryGetValue(index, out var state)) _choices[index] = state = new Choice();
        foreach (var (name, value) in choice)
        {
            if (name is "index" or "logprobs") continue;
            if (name == "delta")
            {
                if (value is JsonObject delta) AddDelta(state, delta);
                continue;
            }
            if (value is not null || !state.Fields.ContainsKey(name)) state.Fields[name] = value?.DeepClone();
        }
    }

    private static void AddDelta(Choice state, JsonObject delta)
    {
        foreach (var (name, value) in delta)
        {
            if (name == "tool_calls")
            {
                if (value is JsonArray calls) AddToolCalls(state, calls);
                state.Seen(name);
                continue;
            }
            state.Seen(name);
            if (value is JsonValue text && text.TryGetValue<string>(out var piece))
            {
                if (!state.Text.TryGetValue(name, out var buffer)) state.Text[name] = buffer = new StringBuilder();
                if (name != "role" || buffer.Length == 0) buffer.Append(piece); // the role is said once, not joined
            }
            else if (value is not null || !state.Other.ContainsKey(name))
            {
                state.Other[name] = value?.DeepClone();
            }
        }
    }

    private static void AddToolCalls(Choice state, JsonArray calls)
    {
        foreach (var item in calls)
        {
            if (item is not JsonObject call) continue;
            var index = call["index"] is JsonValue i && i.TryGetValue<int>(out var n) ? n : state.Tools.Count;
            var id = call["id"] is JsonValue idValue && idValue.TryGetValue<string>(out var idText) && idText.Length > 0 ? idText : null;
            if (!state.ToolAt.TryGetValue(index, out var tool) || id is not null && tool.Id is not null && id != tool.Id)
            {
                state.Tools.Add(tool = new ToolCall(index));
                state.ToolAt[index] = tool;
            }
            tool.Id ??= id;
            if (call["type"] is JsonValue type && type.TryGetValue<string>(out var typeText)) tool.Type = typeText;
            if (call["function"] is JsonObject function)
            {
                if (function["name"] is JsonValue name && name.TryGetValue<string>(out var nameText) && nameText.Length > 0) tool.Name ??= nameText;
                if (function["arguments"] is JsonValue args && args.TryGetValue<string>(out var argsText)) tool.Arguments.Append(argsText);
            }
        }
    }

    /// <summary>The assembled <c>chat.completion</c>.</summary>
    /// <param name="servedModel">The model the provider said it served, when the stream said it elsewhere than in its chunks.</param>
    public byte[] Build(string? servedModel = null)
    {
        var body = new JsonObject
        {
            ["id"] = _top["id"]?.DeepClone(),
            ["object"] = "chat.completion",
            ["created"] = _top["created"]?.DeepClone(),
            ["model"] = servedModel is not null ? servedModel : _top["model"]?.DeepClone(),
            ["choices"] = new JsonArray([.. _choices.Select(c => (JsonNode)BuildChoice(c.Key, c.Value))]),
            ["usage"] = _usage?.DeepClone(),
        };
        foreach (var (name, value) in _top)
            if (!body.ContainsKey(name)) body[name] = value?.DeepClone();
        return JsonSerializer.SerializeToUtf8Bytes(body, GatewayJsonContext.Wire.JsonObject);
    }

    private static JsonObject BuildChoice(int index, Choice state)
    {
        var message = new JsonObject
        {
            ["role"] = state.Text.TryGetValue("role", out var role) ? role.ToString() : "assistant",
            // As OpenAI answers: null content beside tool calls when nothing was said.
            ["content"] = state.Text.TryGetValue("content", out var content) && (content.Length > 0 || state.Tools.Count == 0) ? content.ToString() : null,
        };
        foreach (var name in state.Order)
        {
            if (name is "role" or "content") continue;
            if (name == "tool_calls")
            {
                if (state.Tools.Count > 0)
                    message["tool_calls"] = new JsonArray([.. state.Tools.OrderBy(t => t.Index).Select(t => (JsonNode)new JsonObject
                    {
                        ["id"] = t.Id, ["type"] = t.Type,
                        ["function"] = new JsonObject { ["name"] = t.Name, ["arguments"] = t.Arguments.ToString() },
                    })]);
                continue;
            }
            message[name] = state.Text.TryGetValue(name, out var text) ? text.ToString() : state.Other.GetValueOrDefault(name)?.DeepClone();
        }
        var choice = new JsonObject { ["index"] = index, ["message"] = message, ["logprobs"] = null };
        foreach (var (name, value) in state.Fields) choice[name] = value?.DeepClone();
        if (!choice.ContainsKey("finish_reason")) choice["finish_reason"] = null;
        return choice;
    }
}
