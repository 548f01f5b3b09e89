using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Gateway.Tests.Fixtures;

/// <summary>
/// Makes request bodies for /v1/chat/completions and /v1/embeddings from a seeded <see cref="Random"/>: random bytes,
/// random JSON trees, and valid requests to the mock model with fields deleted, duplicated, retyped, nested deeply,
/// blown up, or their bytes truncated, flipped and mis-encoded. The same seed gives the same cases. With <paramref name="anthropic"/>,
/// every case goes to /v1/messages, made from Anthropic Messages requests; with <paramref name="responses"/>, to /v1/responses, made
/// from Responses requests.
/// </summary>
public sealed class BodyFuzzer(Random random, bool anthropic = false, bool responses = false)
{
    public const string ResponsesPath = "/v1/responses";

    public const string ChatPath = "/v1/chat/completions";
    public const string EmbeddingsPath = "/v1/embeddings";
    public const string MessagesPath = "/v1/messages";

    /// <summary>A JSON fragment written as is (possibly invalid: lone surrogate escapes, bad UTF-8).</summary>
    private sealed record Raw(byte[] Bytes);

    public List<FuzzCase> Generate(int count) => [.. Enumerable.Range(0, count).Select(Next)];

    private FuzzCase Next(int index)
    {
        var chat = anthropic || responses || random.NextDouble() < 0.7;
        var path = anthropic ? MessagesPath : responses ? ResponsesPath : chat ? ChatPath : EmbeddingsPath;
        var roll = random.NextDouble();
        var (body, recipe) = roll switch
        {
            < 0.002 => (Oversized(chat), "over the body limit"),
            < 0.08 => (RandomBytes(), "random bytes"),
            < 0.20 => (Write(RandomTree(0)), "random JSON"),
            < 0.80 => Mutated(chat),
            _ => BytesMutated(chat),
        };
        var contentType = random.NextDouble() switch
        {
            < 0.88 => "application/json",
            < 0.90 => null,
            < 0.92 => "text/plain",
            < 0.94 => "application/x-www-form-urlencoded",
            < 0.96 => "multipart/form-data; boundary=fuzz",
            < 0.98 => "application/json; charset=utf-16",
            _ => "application/%%; x=\"",
        };
        return new FuzzCase(index, path, body, contentType, random.NextDouble() < 0.1, recipe);
    }

    // Just over the default 10 MiB limit (Gateway:MaxRequestBodyBytes): a 413, metered like any other answer.
    private byte[] Oversized(bool chat)
    {
        var filler = new string('a', 10 * 1024 * 1024 + 1);
        if (anthropic) return Encoding.UTF8.GetBytes($$"""{"model":"mock","max_tokens":10,"messages":[{"role":"user","content":"{{filler}}"}]}""");
        if (responses) return Encoding.UTF8.GetBytes($$"""{"model":"mock","input":"{{filler}}"}""");
        return Encoding.UTF8.GetBytes(chat
            ? $$"""{"model":"mock","messages":[{"role":"user","content":"{{filler}}"}]}"""
            : $$"""{"model":"mock","input":"{{filler}}"}""");
    }

    private byte[] RandomBytes()
    {
        var bytes = new byte[random.Next(0, 600)];
        random.NextBytes(bytes);
        if (bytes.Length > 2 && random.NextDouble() < 0.5) bytes[0] = (byte)'{';
        return bytes;
    }

    // ---- valid requests to mutate -------------------------------------------------------------------------------

    private static readonly string[] ChatTemplates =
    [
        """{"model":"mock","messages":[{"role":"user","content":"Hello"}]}""",
        """{"model":"mock","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"},{"role":"user","content":"Again"}],"temperature":0.5,"top_p":0.9,"max_tokens":50,"n":2,"stop":["\n","END"],"user":"fuzzer","stream":false}""",
        """{"model":"mock","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Stream please"}],"max_completion_tokens":20}""",
        """{"model":"mock","messages":[{"role":"user","content":"Weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"sunny"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"tool_choice":"auto","parallel_tool_calls":false}""",
        """{"model":"mock","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}],"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"object"}}},"seed":7,"metadata":{"team":"fuzz"},"logit_bias":{"50256":-100}}""",
        """{"model":"mock","temperature":0,"messages":[{"role":"developer","content":"Answer in JSON."},{"role":"user","content":"List three colours","name":"alice"}],"response_format":{"type":"json_object"},"tool_choice":{"type":"function","function":{"name":"f"}},"tools":[{"type":"function","function":{"name":"f"}}]}""",
    ];

    private static readonly string[] EmbeddingTemplates =
    [
        """{"model":"mock","input":"hello world"}""",
        """{"model":"mock","input":["one","two","three"],"dimensions":8,"encoding_format":"base64","user":"fuzzer"}""",
        """{"model":"mock","input":[[1,2,3],[4,5]],"encoding_format":"float"}""",
        """{"model":"mock","input":[101,2023,2003]}""",
    ];

    private static readonly string[] MessagesTemplates =
    [
        """{"model":"mock","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}""",
        """{"model":"mock","max_tokens":64,"system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]},{"role":"assistant","content":"Hello!"},{"role":"user","content":"Again"}],"temperature":0.5,"top_p":0.9,"top_k":5,"stop_sequences":["END"],"metadata":{"user_id":"fuzzer"},"stream":false}""",
        """{"model":"mock","max_tokens":32,"stream":true,"messages":[{"role":"user","content":"Stream please"}]}""",
        """{"model":"mock","max_tokens":64,"messages":[{"role":"user","content":"Weather?"},{"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"c2ln"},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"sunny"}]},{"type":"text","text":"and tomorrow?"}]}],"tools":[{"name":"get_weather","description":"Weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],"tool_choice":{"type":"auto","disable_parallel_tool_use":true}}""",
        """{"model":"mock","max_tokens":64,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},{"type":"document","source":{"type":"text","media_type":"text/plain","data":"A note."}},{"type":"text","text":"What is this?"}]}],"tools":[{"type":"web_search_20250305","name":"web_search"}],"tool_choice":{"type":"tool","name":"web_search"}}""",
    ];

    private static readonly string[] ResponsesTemplates =
    [
        """{"model":"mock","input":"Hello"}""",
        """{"model":"mock","instructions":"Be brief.","input":[{"role":"user","content":"Hi"},{"role":"assistant","content":[{"type":"output_text","text":"Hello!"}]},{"role":"user","content":[{"type":"input_text","text":"Again"}]}],"temperature":0.5,"top_p":0.9,"max_output_tokens":50,"metadata":{"team":"fuzz"},"store":false}""",
        """{"model":"mock","stream":true,"input":"Stream please","reasoning":{"effort":"low"},"store":true}""",
        """{"model":"mock","input":[{"role":"user","content":"Weather?"},{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},{"type":"function_call_output","call_id":"call_1","output":"sunny"}],"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}],"tool_choice":"auto","parallel_tool_calls":false}""",
        """{"model":"mock","input":[{"role":"user","content":[{"type":"input_text","text":"What is this?"},{"type":"input_image","image_url":"data:image/png;base64,iVBORw0KGgo="}]}],"text":{"format":{"type":"json_schema","name":"a","schema":{"type":"object"}}},"previous_response_id":"resp_unknown"}""",
    ];

    private JsonNode Template(bool chat)
    {
        var templates = anthropic ? MessagesTemplates : responses ? ResponsesTemplates : chat ? ChatTemplates : EmbeddingTemplates;
        return JsonNode.Parse(templates[random.Next(templates.Length)])!;
    }

    private (byte[] Body, string Recipe) Mutated(bool chat)
    {
        var root = Template(chat);
        var recipe = new List<string>();
        var mutations = random.Next(1, 4);
        for (var i = 0; i < mutations; i++) root = Mutate(root, recipe);
        var duplicate = random.NextDouble() < 0.15;
        if (duplicate) recipe.Add("duplicate keys");
        return (Write(root, duplicate), string.Join(", ", recipe));
    }

    private (byte[] Body, string Recipe) BytesMutated(bool chat)
    {
        var recipe = new List<string>();
        var root = Template(chat);
        if (random.NextDouble() < 0.5) root = Mutate(root, recipe);
        var bytes = new List<byte>(Write(root));
        switch (random.Next(9))
        {
            case 0:
                recipe.Add("truncated");
                bytes = bytes.Take(random.Next(bytes.Count)).ToList();
                break;
            case 1:
                recipe.Add("bytes flipped");
                for (var i = random.Next(1, 6); i > 0; i--) bytes[random.Next(bytes.Count)] ^= (byte)(1 << random.Next(8));
                break;
            case 2:
                recipe.Add("random bytes inserted");
                var junk = new byte[random.Next(1, 8)];
                random.NextBytes(junk);
                bytes.InsertRange(random.Next(bytes.Count), junk);
                break;
            case 3:
                recipe.Add("BOM");
                bytes.InsertRange(0, [0xEF, 0xBB, 0xBF]);
                break;
            case 4:
                recipe.Add("NUL byte");
                bytes.Insert(random.Next(bytes.Count), 0);
                break;
            case 5:
                recipe.Add("invalid UTF-8 in a string");
                bytes.InsertRange(InsideAString(bytes), Pick<byte[]>([[0xFF], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xC3, 0x28], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]]));
                break;
            case 6:
                recipe.Add("two documents");
                bytes.AddRange(bytes.ToArray());
                break;
            case 7:
                recipe.Add("trailing garbage");
                bytes.AddRange(Encoding.UTF8.GetBytes(Pick([" x", ",", "]", "}", "\0", " // comment", "/* c */"])));
                break;
            default:
                recipe.Add("UTF-16");
                bytes = [.. Encoding.Unicode.GetBytes(Encoding.UTF8.GetString(bytes.ToArray()))];
                break;
        }
        return ([.. bytes], string.Join(", ", recipe));
    }

    // The position just after the opening quote of a random string value or name (or anywhere, if none).
    private int InsideAString(List<byte> bytes)
    {
        var quotes = bytes.Select((b, i) => (b, i)).Where(x => x.b == (byte)'"').Select(x => x.i + 1).ToList();
        return quotes.Count == 0 ? random.Next(bytes.Count + 1) : quotes[random.Next(quotes.Count)];
    }

    // ---- structural mutations -----------------------------------------------------------------------------------

    private JsonNode Mutate(JsonNode root, List<string> recipe)
    {
        var slots = Slots(root).ToList();
        var (parent, key, index) = slots.Count > 0 ? slots[random.Next(slots.Count)] : (null, null, -1);
        switch (random.Next(10))
        {
            case 0 when parent is not null:
                recipe.Add($"deleted {key ?? index.ToString(CultureInfo.InvariantCulture)}");
                Remove(parent, key, index);
                return root;
            case 1 or 2 when parent is not null:
                recipe.Add($"retyped {key ?? index.ToString(CultureInfo.InvariantCulture)}");
                Set(parent, key, index, RandomValue());
                return root;
            case 3 when parent is not null:
                var depth = random.Next(40, 140);
                recipe.Add($"nested {depth} deep at {key}");
                Set(parent, key, index, Nested(depth));
                return root;
            case 4 when parent is not null:
                recipe.Add($"huge string at {key}");
                Set(parent, key, index, new string(Pick(['a', 'é', '字', ' ', '"']), random.Next(10_000, 200_000)));
                return root;
            case 5:
                recipe.Add("huge array");
                return HugeArray(root);
            case 6:
                recipe.Add("edge number");
                SetNamed(root, Pick(["max_tokens", "max_completion_tokens", "n", "temperature", "top_p", "dimensions", "seed", "stream"]), EdgeNumber());
                return root;
            case 7:
                recipe.Add("odd string");
                SetNamed(root, Pick(["model", "user", "encoding_format"]), OddString());
                return root;
            case 8 when root is JsonObject o:
                recipe.Add("odd content");
                if (o["messages"] is JsonArray { Count: > 0 } messages && messages[random.Next(messages.Count)] is JsonObject message)
                    message[Pick(["content", "role", "tool_calls", "name", "tool_call_id"])] = RandomValue();
                else o["input"] = RandomValue();
                return root;
            default:
                recipe.Add("new field");
                if (root is JsonObject obj) obj[Pick(["stop", "tools", "tool_choice", "response_format", "stream_options", "logprobs", "input", "messages", RandomName()])] = RandomValue();
                return root;
        }
    }

    private JsonNode HugeArray(JsonNode root)
    {
        if (root is not JsonObject o) return root;
        var count = random.Next(100, 4000);
        var field = o.ContainsKey("messages") ? Pick(["messages", "tools", "stop", "messages"]) : "input";
        JsonNode Element() => field switch
        {
            "messages" => new JsonObject { ["role"] = "user", ["content"] = random.NextDouble() < 0.5 ? "hi" : new JsonArray(new JsonObject { ["type"] = "text", ["text"] = "x" }) },
            "tools" => new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = "f" + random.Next() } },
            "stop" => "s",
            _ => random.NextDouble() < 0.5 ? "text" : JsonValue.Create(random.Next(0, 200_000)),
        };
        o[field] = new JsonArray([.. Enumerable.Range(0, count).Select(_ => Element())]);
        return root;
    }

    private static IEnumerable<(JsonNode Parent, string? Key, int Index)> Slots(JsonNode node)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (key, value) in o.ToList())
                {
                    yield return (o, key, -1);
                    if (value is not null) foreach (var slot in Slots(value)) yield return slot;
                }
                break;
            case JsonArray a:
                for (var i = 0; i < a.Count; i++)
                {
                    yield return (a, null, i);
                    if (a[i] is { } item) foreach (var slot in Slots(item)) yield return slot;
                }
                break;
        }
    }

    private static void Remove(JsonNode parent, string? key, int index)
    {
        if (parent is JsonObject o) o.Remove(key!);
        else if (parent is JsonArray a) a.RemoveAt(index);
    }

    private static void Set(JsonNode parent, string? key, int index, JsonNode? value)
    {
        if (parent is JsonObject o) o[key!] = value;
        else if (parent is JsonArray a) a[index] = value;
    }

    private static void SetNamed(JsonNode root, string name, JsonNode? value)
    {
        if (root is JsonObject o) o[name] = value;
    }

    // ---- random values ------------------------------------------------------------------------------------------

    private JsonNode? RandomValue() => random.Next(8) switch
    {
        0 => null,
        1 => JsonValue.Create(random.NextDouble() < 0.5),
        2 => EdgeNumber(),
        3 => OddString(),
        4 => RandomTree(3),
        5 => new JsonArray(),
        6 => new JsonObject(),
        _ => JsonValue.Create(RandomName()),
    };

    private JsonValue EdgeNumber() => JsonValue.Create(new Raw(Encoding.ASCII.GetBytes(Pick(["0", "-1", "1", "2", "-0", "0.5", "1e400", "-1e400", "1e-400",
        "2147483647", "2147483648", "-2147483649", "9223372036854775808", "123456789012345678901234567890", "1.7976931348623157e308", "4.9e-324",
        "128", "129", "1.5", "3", "99999999"]))))!;

    private JsonValue OddString() => random.Next(9) switch
    {
        0 => JsonValue.Create(""),
        1 => JsonValue.Create("a\0b"),
        2 => JsonValue.Create("😀 emoji ÿ ﷽ \u200b"),
        3 => JsonValue.Create(new Raw("\"\\ud800\""u8.ToArray()))!,
        4 => JsonValue.Create(new Raw("\"\\udc00x\\ud800\""u8.ToArray()))!,
        5 => JsonValue.Create(new Raw([(byte)'"', 0xFF, 0xFE, (byte)'"']))!,
        6 => JsonValue.Create(new string('x', random.Next(1000, 20_000))),
        7 => JsonValue.Create("mock"),
        _ => JsonValue.Create("\"quotes\" \\ back\\slash \n\t\r control \u0001"),
    };

    private string RandomName() => Pick(["model", "messages", "input", "x", "", "__proto__", "constructor", "$ref", "a\u0000b", "😀", "MODEL", "Model"]);

    private JsonNode? RandomTree(int depth)
    {
        if (depth > 5 || random.NextDouble() < 0.3)
        {
            return random.Next(4) switch
            {
                0 => EdgeNumber(),
                1 => OddString(),
                2 => JsonValue.Create(random.NextDouble() < 0.5),
                _ => null,
            };
        }
        if (random.NextDouble() < 0.03) return Nested(random.Next(60, 2000));
        if (random.NextDouble() < 0.5)
            return new JsonArray([.. Enumerable.Range(0, random.Next(0, 6)).Select(_ => RandomTree(depth + 1))]);
        var o = new JsonObject();
        for (var i = random.Next(0, 6); i > 0; i--) o[RandomName() + (random.NextDouble() < 0.5 ? "" : i.ToString(CultureInfo.InvariantCulture))] = RandomTree(depth + 1);
        return o;
    }

    private JsonValue Nested(int depth)
    {
        var open = random.NextDouble() < 0.5;
        var text = open
            ? string.Concat(Enumerable.Repeat("[", depth)) + "1" + string.Concat(Enumerable.Repeat("]", depth))
            : string.Concat(Enumerable.Repeat("{\"a\":", depth)) + "1" + string.Concat(Enumerable.Repeat("}", depth));
        return JsonValue.Create(new Raw(Encoding.ASCII.GetBytes(text)))!;
    }

    private T Pick<T>(T[] items) => items[random.Next(items.Length)];

    // ---- writing, with duplicate keys and raw fragments ---------------------------------------------------------

    private byte[] Write(JsonNode? root, bool duplicateKeys = false)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { SkipValidation = true, MaxDepth = 4096 }))
            WriteNode(writer, root, duplicateKeys);
        return buffer.WrittenSpan.ToArray();
    }

    private void WriteNode(Utf8JsonWriter writer, JsonNode? node, bool duplicateKeys)
    {
        switch (node)
        {
            case null:
                writer.WriteNullValue();
                break;
            case JsonValue value when value.TryGetValue<Raw>(out var raw):
                writer.WriteRawValue(raw.Bytes, skipInputValidation: true);
                break;
            case JsonObject o:
                writer.WriteStartObject();
                foreach (var (key, value) in o)
                {
                    var times = duplicateKeys && random.NextDouble() < 0.4 ? 2 : 1;
                    for (var i = 0; i < times; i++)
                    {
                        writer.WritePropertyName(key);
                        WriteNode(writer, i == 0 ? value : RandomValue(), duplicateKeys);
                    }
                }
                writer.WriteEndObject();
                break;
            case JsonArray a:
                writer.WriteStartArray();
                foreach (var item in a) WriteNode(writer, item, duplicateKeys);
                writer.WriteEndArray();
                break;
            default:
                node.WriteTo(writer);
                break;
        }
    }
}
