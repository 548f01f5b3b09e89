using System.Text;
using System.Text.Json.Nodes;
using Gateway.Core.Providers;

namespace Gateway.Tests.Core;

/// <summary>A streamed answer assembled into the chat.completion a non-streaming client expects, unknown fields included.</summary>
public sealed class CompletionAssemblerTests
{
    private static JsonObject Assemble(params string[] chunks)
    {
        var assembler = new CompletionAssembler();
        foreach (var chunk in chunks) assembler.Add(Encoding.UTF8.GetBytes(chunk));
        return JsonNode.Parse(assembler.ToCompletion())!.AsObject();
    }

    [Fact]
    public void TextToolCallsUsageAndUnknownFields_BecomeOneCompletion()
    {
        // Chunks as OpenAI streams them (https://platform.openai.com/docs/api-reference/chat-streaming/streaming), with a
        // provider's extra delta field (DeepSeek's reasoning_content) and an extra top-level field.
        var completion = Assemble(
            """{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_1","service_tier":"default","x_vendor":{"region":"eu"},"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}""",
            """{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"reasoning_content":"Think","content":"Hel"},"logprobs":null,"finish_reason":null}],"usage":null}""",
            """{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"reasoning_content":"ing.","content":"lo"},"logprobs":null,"finish_reason":null}],"usage":null}""",
            """{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}""",
            """{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"logprobs":null,"finish_reason":null}],"usage":null}""",
            """{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}""",
            """{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}""",
            """{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":21,"completion_tokens":7,"total_tokens":28,"prompt_tokens_details":{"cached_tokens":5}}}""");

        Assert.Equal(("chatcmpl-1", "chat.completion", 1741569952L, "gpt-4o-mini-2024-07-18", "fp_1", "eu"),
            (completion["id"]!.GetValue<string>(), completion["object"]!.GetValue<string>(), completion["created"]!.GetValue<long>(),
             completion["model"]!.GetValue<string>(), completion["system_fingerprint"]!.GetValue<string>(), completion["x_vendor"]!["region"]!.GetValue<string>()));
        var choice = Assert.Single(completion["choices"]!.AsArray())!;
        var message = choice["message"]!;
        Assert.Equal(("assistant", "Hello", "Thinking.", "tool_calls"), (message["role"]!.GetValue<string>(), message["content"]!.GetValue<string>(),
            message["reasoning_content"]!.GetValue<string>(), choice["finish_reason"]!.GetValue<string>()));
        Assert.Null(message["refusal"]);
        var call = Assert.Single(message["tool_calls"]!.AsArray())!;
        Assert.Equal(("call_abc", "function", "get_weather", """{"city":"Paris"}"""), (call["id"]!.GetValue<string>(), call["type"]!.GetValue<string>(),
            call["function"]!["name"]!.GetValue<string>(), call["function"]!["arguments"]!.GetValue<string>()));
        Assert.Null(call["index"]);
        Assert.Equal((21, 5), (completion["usage"]!["prompt_tokens"]!.GetValue<int>(), completion["usage"]!["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>()));
    }

    [Fact]
    public void SeveralChoices_StayApartInIndexOrder()
    {
        var completion = Assemble(
            """{"id":"c","choices":[{"index":1,"delta":{"role":"assistant","content":"B"},"finish_reason":null}]}""",
            """{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"A"},"finish_reason":null}]}""",
            """{"id":"c","choices":[{"index":1,"delta":{"content":"b"},"finish_reason":"stop"},{"index":0,"delta":{"content":"a"},"finish_reason":"length"}]}""");

        var choices = completion["choices"]!.AsArray();
        Assert.Equal(["Aa", "Bb"], choices.Select(c => c!["message"]!["content"]!.GetValue<string>()));
        Assert.Equal(["length", "stop"], choices.Select(c => c!["finish_reason"]!.GetValue<string>()));
    }
}
