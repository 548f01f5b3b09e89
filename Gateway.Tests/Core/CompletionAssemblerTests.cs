using System.Text;
using System.Text.Json.Nodes;
using Gateway.Core.Chat;

namespace Gateway.Tests.Core;

/// <summary>Chunks in, one chat.completion out, with nothing the provider said lost.</summary>
public sealed class CompletionAssemblerTests
{
    private static JsonNode Assemble(params string[] chunks)
    {
        var assembler = new CompletionAssembler();
        foreach (var chunk in chunks) assembler.Add(Encoding.UTF8.GetBytes(chunk));
        return JsonNode.Parse(assembler.Build())!;
    }

    [Fact]
    public void TextAndUnknownFields_AreJoined_AndTheTopLevelIsKept()
    {
        var answer = Assemble(
            """{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","system_fingerprint":"fp","x_top":{"a":1},"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}""",
            """{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":"Hel","reasoning_content":"think "},"finish_reason":null}]}""",
            """{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":"lo","reasoning_content":"more","x_delta":[1]},"finish_reason":null}]}""",
            """{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop","x_choice":"v"}]}""",
            """{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"x_usage":1}}""");

        Assert.Equal(("c1", "chat.completion", 7, "m", "fp", 1), (answer["id"]!.GetValue<string>(), answer["object"]!.GetValue<string>(),
            answer["created"]!.GetValue<int>(), answer["model"]!.GetValue<string>(), answer["system_fingerprint"]!.GetValue<string>(), answer["x_top"]!["a"]!.GetValue<int>()));
        var choice = answer["choices"]!.AsArray().Single()!;
        var message = choice["message"]!;
        Assert.Equal(("assistant", "Hello", "think more", 1), (message["role"]!.GetValue<string>(), message["content"]!.GetValue<string>(),
            message["reasoning_content"]!.GetValue<string>(), message["x_delta"]![0]!.GetValue<int>()));
        Assert.True(message.AsObject().ContainsKey("refusal"));
        Assert.Null(message["refusal"]);
        Assert.Equal(("stop", "v"), (choice["finish_reason"]!.GetValue<string>(), choice["x_choice"]!.GetValue<string>()));
        Assert.Equal((5, 1), (answer["usage"]!["total_tokens"]!.GetValue<int>(), answer["usage"]!["x_usage"]!.GetValue<int>()));
    }

    [Fact]
    public void ToolCalls_AreJoinedByIndex_AndContentIsNullBesideThem()
    {
        var answer = Assemble(
            """{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}}]}}]}""",
            """{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"g","arguments":"{\"y\""}}]}}]}""",
            """{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":1}"}}]}}]}""",
            """{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":":2}"}}]},"finish_reason":"tool_calls"}]}""");

        var message = answer["choices"]![0]!["message"]!;
        Assert.Null(message["content"]);
        var calls = message["tool_calls"]!.AsArray();
        Assert.Equal([("call_a", "f", "{\"x\":1}"), ("call_b", "g", "{\"y\":2}")],
            calls.Select(c => (c!["id"]!.GetValue<string>(), c["function"]!["name"]!.GetValue<string>(), c["function"]!["arguments"]!.GetValue<string>())));
    }

    [Fact]
    public void Choices_AreKeptApartByIndex()
    {
        var answer = Assemble(
            """{"id":"c","choices":[{"index":1,"delta":{"content":"B"}},{"index":0,"delta":{"content":"A"}}]}""",
            """{"id":"c","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"},{"index":1,"delta":{"content":"b"},"finish_reason":"length"}]}""");

        Assert.Equal([(0, "Aa", "stop"), (1, "Bb", "length")], answer["choices"]!.AsArray()
            .Select(c => (c!["index"]!.GetValue<int>(), c["message"]!["content"]!.GetValue<string>(), c["finish_reason"]!.GetValue<string>())));
    }

    [Fact]
    public void Text_InAnyScript_WithEscapes_OrLongerThanAChunkBuffer_IsJoinedAsWritten()
    {
        // As JSON writes them: escapes left in the chunk.
        string[] pieces = ["héllo ", "😀 ", "日本語 ", """\"quoted\"\n\ttab \\ \u00e9 """, new string('x', 1024), "€", new string('ü', 700), """\ud83d\ude00"""];
        var chunks = pieces.Select(p => $$$"""{"id":"c","choices":[{"index":0,"delta":{"content":"{{{p}}}"}}]}""").ToArray();
        var calls = pieces.Select(p => $$$"""{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{{{p}}}"}}]}}]}""");
        var expected = string.Concat(pieces.Select(p => JsonNode.Parse($"\"{p}\"")!.GetValue<string>()));

        Assert.Equal(expected, Assemble(chunks)["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal(expected, Assemble([.. calls])["choices"]![0]!["message"]!["tool_calls"]![0]!["function"]!["arguments"]!.GetValue<string>());
    }

    [Fact]
    public void ALongAnswer_IsJoinedWhole()
    {
        var chunks = Enumerable.Range(0, 20_000).Select(i => $$$"""{"id":"c","choices":[{"index":0,"delta":{"content":"{{{i % 10}}}"}}]}""").ToArray();

        var content = Assemble(chunks)["choices"]![0]!["message"]!["content"]!.GetValue<string>();

        Assert.Equal(string.Concat(Enumerable.Range(0, 20_000).Select(i => (i % 10).ToString(System.Globalization.CultureInfo.InvariantCulture))), content);
    }

    [Fact]
    public void ParallelToolCallsThatShareAnIndex_StayApart()
    {
        // Ollama and some vLLM builds stream every call of a parallel batch with "index": 0; each call has its own id.
        var answer = Assemble(
            """{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"add","arguments":"{\"a\":"}}]}}]}""",
            """{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"2}"}}]}}]}""",
            """{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_b","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Tokyo\"}"}}]}}]}""",
            """{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}""");

        var calls = answer["choices"]![0]!["message"]!["tool_calls"]!.AsArray();
        Assert.Equal([("call_a", "add", "{\"a\":2}"), ("call_b", "get_weather", "{\"city\":\"Tokyo\"}")],
            calls.Select(c => (c!["id"]!.GetValue<string>(), c["function"]!["name"]!.GetValue<string>(), c["function"]!["arguments"]!.GetValue<string>())));
    }

    [Fact]
    public void IndexesAndIds_WrittenAfterWhatTheyPlace_StillPlaceIt()
    {
        // JSON objects are unordered: a choice's index after its delta, a tool call's index and id after its function.
        var answer = Assemble(
            """{"id":"c","choices":[{"delta":{"content":"B"},"index":1},{"delta":{"content":"A"},"finish_reason":null,"index":0}]}""",
            """{"id":"c","choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{","name":"f"},"type":"function","id":"call_a","index":0}]},"index":0}]}""",
            """{"id":"c","choices":[{"delta":{"tool_calls":[{"function":{"arguments":"}"},"index":0}]},"index":0}]}""",
            """{"id":"c","choices":[{"delta":{"tool_calls":[{"function":{"name":"g","arguments":"[]"},"id":"call_b","index":0}]},"index":0}]}""",
            """{"id":"c","choices":[{"delta":{"content":"b"},"finish_reason":"stop","index":1}]}""");

        var choices = answer["choices"]!.AsArray();
        Assert.Equal([(0, "A"), (1, "Bb")], choices.Select(c => (c!["index"]!.GetValue<int>(), c["message"]!["content"]!.GetValue<string>())));
        Assert.Equal([("call_a", "f", "{}"), ("call_b", "g", "[]")], choices[0]!["message"]!["tool_calls"]!.AsArray()
            .Select(c => (c!["id"]!.GetValue<string>(), c["function"]!["name"]!.GetValue<string>(), c["function"]!["arguments"]!.GetValue<string>())));
        Assert.Equal("stop", choices[1]!["finish_reason"]!.GetValue<string>());
    }

    [Fact]
    public void StreamOnlyPadding_IsNotPartOfTheAnswer()
    {
        // OpenAI pads every chunk with a random "obfuscation" string (stream_options.include_obfuscation, on by default); a
        // chat.completion never has one.
        var answer = Assemble(
            """{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}],"obfuscation":"ZGF"}""",
            """{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"obfuscation":"lRK2aBv"}""");

        Assert.False(answer.AsObject().ContainsKey("obfuscation"));
        Assert.Equal("Hi", answer["choices"]![0]!["message"]!["content"]!.GetValue<string>());
    }
}
