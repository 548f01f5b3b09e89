using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers;

/// <summary>
/// Builds one <c>chat.completion</c> from the <c>chat.completion.chunk</c>s of a stream
/// (https://platform.openai.com/docs/api-reference/chat-streaming), for non-streaming requests the gateway streams upstream so
/// that a first-token deadline applies to them too. Generic, so fields the gateway does not know survive: top-level fields
/// keep their last value; in each choice's delta, strings are concatenated (<c>content</c>, <c>refusal</c>, a provider's
/// <c>reasoning_content</c>…), <c>tool_calls</c> are merged by their <c>index</c> (arguments concatenated), any other value
/// keeps its last; <c>logprobs</c> arrays are concatenated; the last <c>usage</c> object is the answer's.
/// </summary>
public sealed class CompletionAssembler
{
    private readonly JsonObject _top = [];
    private readonly SortedDictionary<int, Choice> _choices = [];
    private JsonNode? _usage;

    private sealed class Choice
    {
        public JsonObject Message { get; } = new() { ["role"] = "assistant" };
        public SortedDictionary<int, JsonObject> ToolCalls { get; } = [];
        public JsonNode? FinishReason { get; set; }
        public JsonObject? Logprobs { get; set; }
        public JsonObject Extra { get; } = [];
    }

    public void Add(ReadOnlyMemory<byte> chunkJson)
    {
        if (JsonNode.Parse(chunkJson.Span) is not JsonObject chunk) return;
        foreach (var (name, value) in chunk)
        {
            switch (name)
            {
                case "object":
                    break;
                case "usage":
                    if (value is JsonObject) _usage = value.DeepClone();
                    break;
                case "choices":
                    if (value is JsonArray choices)
                        foreach (var choice in choices.OfType<JsonObject>()) AddChoice(choice);
                    break;
                default:
                    _top[name] = value?.DeepClone();
                    break;
            }
        }
    }

    private void AddChoice(JsonObject delta)
    {
        var index = delta["index"] is JsonValue i && i.TryGetValue<int>(out var n) ? n : 0;
        if (!_choices.TryGetValue(index, out var choice)) _choices[index] = choice = new Choice();
        foreach (var (name, value) in delta)
        {
            switch (name)
            {
                case "index":
                    break;
                case "delta" when value is JsonObject fields:
                    foreach (var (field, part) in fields) Merge(choice, field, part);
                    break;
                case "finish_reason":
                    if (value is not null) choice.FinishReason = value.DeepClone();
                    break;
                case "logprobs" when value is JsonObject logprobs:
                    choice.Logprobs ??= [];
                    foreach (var (list, items) in logprobs)
                    {
                        if (items is not JsonArray array) continue;
                        if (choice.Logprobs[list] is not JsonArray into) choice.Logprobs[list] = into = [];
                        foreach (var item in array) into.Add(item?.DeepClone());
                    }
                    break;
                case "logprobs":
                    break;
                default:
                    choice.Extra[name] = value?.DeepClone();
                    break;
            }
        }
    }

    private static void Merge(Choice choice, string field, JsonNode? part)
    {
        var message = choice.Message;
        if (field == "tool_calls" && part is JsonArray calls)
        {
            foreach (var call in calls.OfType<JsonObject>())
            {
                var at = call["index"] is JsonValue v && v.TryGetValue<int>(out var k) ? k : choice.ToolCalls.Count;
                if (!choice.ToolCalls.TryGetValue(at, out var into)) choice.ToolCalls[at] = into = [];
                foreach (var (name, value) in call)
                {
                    if (name == "index") continue;
                    if (name == "function" && value is JsonObject function)
                    {
                        if (into["function"] is not JsonObject target) into["function"] = target = [];
                        foreach (var (key, piece) in function) Concat(target, key, piece);
                    }
                    else
                    {
                        into[name] = value?.DeepClone();
                    }
                }
            }
            return;
        }
        if (field == "role")
        {
            if (part is not null) message["role"] = part.DeepClone();
            return;
        }
        Concat(message, field, part);
    }

    // Strings add up; anything else keeps its last value; a null never overwrites what arrived.
    private static void Concat(JsonObject into, string name, JsonNode? part)
    {
        if (part is JsonValue value && value.GetValueKind() == JsonValueKind.String
            && into[name] is JsonValue existing && existing.GetValueKind() == JsonValueKind.String)
            into[name] = existing.GetValue<string>() + value.GetValue<string>();
        else if (part is not null || !into.ContainsKey(name))
            into[name] = part?.DeepClone();
    }

    /// <summary>The assembled <c>chat.completion</c>, UTF-8.</summary>
    public byte[] ToCompletion()
    {
        var completion = new JsonObject();
        if (_top["id"] is { } id) completion["id"] = id.DeepClone();
        completion["object"] = "chat.completion";
        foreach (var (name, value) in _top)
            if (name != "id") completion[name] = value?.DeepClone();
        var choices = new JsonArray();
        foreach (var (index, choice) in _choices)
        {
            var message = choice.Message;
            if (!message.ContainsKey("content")) message["content"] = null;
            if (choice.ToolCalls.Count > 0) message["tool_calls"] = new JsonArray([.. choice.ToolCalls.Values]);
            var built = new JsonObject { ["index"] = index, ["message"] = message, ["logprobs"] = choice.Logprobs, ["finish_reason"] = choice.FinishReason };
            foreach (var (name, value) in choice.Extra) built[name] = value;
            choices.Add(built);
        }
        completion["choices"] = choices;
        if (_usage is not null) completion["usage"] = _usage;
        return JsonSerializer.SerializeToUtf8Bytes(completion, GatewayJsonContext.Wire.JsonObject);
    }
}
