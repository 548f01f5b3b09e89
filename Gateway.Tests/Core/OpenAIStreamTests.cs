using System.Net;
using System.Text;
using Gateway.Core.Chat;
using Gateway.Core.Providers;
using Gateway.Core.Providers.OpenAI;

namespace Gateway.Tests.Core;

/// <summary>
/// The OpenAI stream reader, fed chunks in the documented chat.completion.chunk shape and the odd ones an upstream may send: what it
/// keeps for metering (text, tool calls, usage, served model) and which chunks it refuses. Each test runs twice: reading alone (a
/// relayed stream) and adding each chunk to an assembler as it reads (a non-streamed answer, read once): the facts kept must be
/// the same, and the assembled answer the one the assembler builds when handed the chunks afterwards, each read whole. Chunks
/// that repeat their envelope (id, object, model, … before <c>choices</c>) are read from their choices on
/// (<see cref="Gateway.Core.Wire.ChunkEnvelope"/>): the tests below feed chunks that do, and chunks that nearly do.
/// </summary>
public sealed class OpenAIStreamTests
{
    private static async Task<(List<StreamChunk> Chunks, UpstreamStream Stream)> ReadAsync(bool assembling, params string[] events)
    {
        var body = string.Concat(events.Select(e => $"data: {e}\n\n")) + "data: [DONE]\n\n";
        var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(body, Encoding.UTF8, "text/event-stream") };
        var assembler = assembling ? new CompletionAssembler() : null;
        var stream = new OpenAIStream("fake", response, new CancellationTokenSource(), CancellationToken.None, assembler);
        Assert.Equal(assembling, stream.Assembles);
        var chunks = new List<StreamChunk>();
        await foreach (var chunk in stream.ReadChunksAsync(CancellationToken.None)) chunks.Add(chunk);
        if (assembler is not null)
        {
            // Assembled as read, a chunk hands on no bytes (its buffer is the next event's); the answer is the events' own.
            Assert.All(chunks, c => Assert.True(c.Json.IsEmpty));
            // The reference reads every chunk whole: no two chunks in a row begin alike, so none skips a repeated envelope.
            var after = new CompletionAssembler();
            for (var i = 0; i < events.Length; i++) after.Add(Encoding.UTF8.GetBytes(i % 2 == 0 ? events[i] : " " + events[i]));
            Assert.Equal(Encoding.UTF8.GetString(after.Build()), Encoding.UTF8.GetString(assembler.Build()));
        }
        return (chunks, stream);
    }

    private static async Task<UpstreamStreamException> RefusedAsync(bool assembling, params string[] events) =>
        await Assert.ThrowsAsync<UpstreamStreamException>(() => ReadAsync(assembling, events));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Chunks_KeepEscapedTextToolCallsUsageAndModel_AndPassTheBytesOnUnchanged(bool assembling)
    {
        string[] events =
        [
            """{"id":"c","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}""",
            """{"id":"c","object":"chat.completion.chunk","model":"ignored-later","choices":[{"index":0,"delta":{"content":"caf\u00e9 \"quoted\"\nline \ud83d\ude00"}}]}""",
            """{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\": 1}"}}]}}]}""",
            """{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}""",
            """{"id":"c","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":3}}}""",
        ];

        var (chunks, stream) = await ReadAsync(assembling, events);

        if (!assembling) Assert.Equal(events, chunks.Select(c => Encoding.UTF8.GetString(c.Json.Span)));
        Assert.Equal([false, true, true, false, false], chunks.Select(c => c.HasContent));
        Assert.Equal([false, false, true, false, false], chunks.Select(c => c.HasToolCall));
        Assert.Equal([false, false, false, false, true], chunks.Select(c => c.IsUsageOnly));
        Assert.Equal("gpt-4o-2024-08-06", stream.ServedModel);
        Assert.Equal(new TokenUsage(11, 7, 3), stream.Usage);
        Assert.Equal("café \"quoted\"\nline 😀" + """[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\": 1}"}}]""",
            stream.Text.ToString());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ServedModel_IsTheFirstChunksLastStringModel_WhateverOddValuesCameBefore(bool assembling)
    {
        var (_, stream) = await ReadAsync(assembling,
            """{"model":7,"choices":[{"index":0,"delta":{"role":"assistant"}}]}""",
            """{"model":null,"choices":[{"index":0,"delta":{"content":"Hi"}}]}""",
            """{"model":"gpt-4o-a","model":"gpt-4o-b","choices":[{"index":0,"delta":{"content":"!"}}]}""",
            """{"model":"later","choices":[]}""");

        Assert.Equal("gpt-4o-b", stream.ServedModel); // a chunk's last, as the reader always took it
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task LongText_InOneChunk_IsKeptWhole(bool assembling)
    {
        var text = string.Concat(Enumerable.Repeat("é\\n", 5_000)); // escaped in the JSON: longer than any stack buffer

        var (_, stream) = await ReadAsync(assembling, $$$"""{"choices":[{"index":0,"delta":{"content":"{{{text}}}"}}]}""");

        Assert.Equal(string.Concat(Enumerable.Repeat("é\n", 5_000)), stream.Text.ToString());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ErrorEvent_AfterText_IsRefused_AndItsTextIsNotCountedAsTheAnswer(bool assembling)
    {
        var refused = await Assert.ThrowsAsync<UpstreamStreamException>(async () =>
        {
            var body = """
                data: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}

                data: {"choices":[{"index":0,"delta":{"content":" not this"}}],"error":{"message":"overloaded","type":"server_error"}}


                """;
            var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(body) };
            var stream = new OpenAIStream("fake", response, new CancellationTokenSource(), CancellationToken.None,
                assembling ? new CompletionAssembler() : null);
            try
            {
                await foreach (var _ in stream.ReadChunksAsync(CancellationToken.None)) { }
            }
            finally
            {
                Assert.Equal("Hello", stream.Text.ToString());
            }
        });
        Assert.Equal("it sent an error event", refused.Failure.Detail);
    }

    [Theory]
    [InlineData("""{"choices":[{"delta":{"content":"x"}}]""", "it sent a chunk that is not JSON")]
    [InlineData("""{"choices":[]} {"choices":[]}""", "it sent a chunk that is not JSON")]
    [InlineData("""{"choices":[{"delta":{"content":"x"}}]}garbage""", "it sent a chunk that is not JSON")]
    [InlineData("""{"a":1,"a":}""", "it sent a chunk that is not JSON")]
    [InlineData("not json", "it sent a chunk that is not JSON")]
    [InlineData("""[{"choices":[]}]""", "it sent a chunk that is not a JSON object")]
    [InlineData("\"text\"", "it sent a chunk that is not a JSON object")]
    [InlineData("42", "it sent a chunk that is not a JSON object")]
    public async Task MalformedChunk_IsRefusedAsTheProtocolBroken(string chunk, string detail)
    {
        foreach (var assembling in new[] { false, true })
        {
            var refused = await RefusedAsync(assembling, chunk);

            Assert.Equal(UpstreamFailureKind.Protocol, refused.Failure.Kind);
            Assert.Equal(detail, refused.Failure.Detail);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task OddButValidShapes_AreReadWithoutFailing(bool assembling)
    {
        var (chunks, stream) = await ReadAsync(assembling,
            """{"error":null,"model":7,"usage":"none","choices":[1,"x",{"delta":null},{"delta":{"content":null,"tool_calls":{}}}]}""",
            """{"choices":{"not":"an array"},"usage":{"prompt_tokens":-4,"completion_tokens":2.5}}""");

        Assert.All(chunks, c => Assert.False(c.HasContent));
        if (!assembling) Assert.True(chunks[0].Json.Length > 0);
        Assert.Null(stream.ServedModel);
        Assert.Equal(new TokenUsage(0, 0, 0), stream.Usage);
        Assert.Equal("", stream.Text.ToString());
    }

    private const string Envelope = """{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_1","choices":""";

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ChunksRepeatingTheirEnvelope_KeepEveryChunksTextToolCallsAndUsage(bool assembling)
    {
        string[] events =
        [
            Envelope + """[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}""",
            Envelope + """[{"index":0,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}],"usage":null}""",
            Envelope + """[{"index":0,"delta":{"content":"lo \u00e9"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x1"}""",
            Envelope + """[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]}}]}""",
            Envelope + """[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}""",
            Envelope + """[],"usage":{"prompt_tokens":19,"completion_tokens":16,"total_tokens":35}}""",
            Envelope + """[],"usage":{"prompt_tokens":20,"completion_tokens":17,"total_tokens":37},"usage":{"prompt_tokens":21,"completion_tokens":18,"total_tokens":39}}""",
        ];

        var (chunks, stream) = await ReadAsync(assembling, events);

        if (!assembling) Assert.Equal(events, chunks.Select(c => Encoding.UTF8.GetString(c.Json.Span)));
        Assert.Equal([false, true, true, true, false, false, false], chunks.Select(c => c.HasContent));
        Assert.Equal([false, false, false, true, false, false, false], chunks.Select(c => c.HasToolCall));
        Assert.Equal([false, false, false, false, false, true, true], chunks.Select(c => c.IsUsageOnly));
        Assert.Equal("gpt-4o-mini-2024-07-18", stream.ServedModel);
        Assert.Equal(new TokenUsage(21, 18, 0), stream.Usage); // the last chunk's last usage
        Assert.Equal("Hello é" + """[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]""", stream.Text.ToString());
    }

    [Theory]
    [InlineData("""[{"delta":{"content":"x"}}]""")]
    [InlineData("""[{"delta":{"content":"x"}}]}garbage""")]
    [InlineData("""[{"delta":{"content":"x"}}]} {"choices":[]}""")]
    [InlineData("""[{"delta":{"content":"x"}]}""")]
    [InlineData("""[],"usage":}""")]
    [InlineData("""}""")]
    [InlineData("")]
    public async Task AChunkRepeatingTheEnvelope_IsStillCheckedAfterIt(string rest)
    {
        foreach (var assembling in new[] { false, true })
        {
            var refused = await RefusedAsync(assembling, Envelope + """[{"index":0,"delta":{"content":"ok"}}]}""", Envelope + rest);

            Assert.Equal(UpstreamFailureKind.Protocol, refused.Failure.Kind);
            Assert.Equal("it sent a chunk that is not JSON", refused.Failure.Detail);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AChunkThatDiffersInItsEnvelope_IsReadWhole(bool assembling)
    {
        // The same length and nearly the same bytes: another model, then one in another id.
        var (_, stream) = await ReadAsync(assembling,
            """{"id":"c1","model":null,"choices":[{"index":0,"delta":{"content":"a"}}]}""",
            """{"id":"c1","model":"m2","choices":[{"index":0,"delta":{"content":"b"}}]}""",
            """{"id":"c2","model":"m3","choices":[{"index":0,"delta":{"content":"c"}}],"usage":{"prompt_tokens":1,"completion_tokens":3,"total_tokens":4}}""");

        Assert.Equal("m2", stream.ServedModel);
        Assert.Equal("abc", stream.Text.ToString());
        Assert.Equal(new TokenUsage(1, 3, 0), stream.Usage);
    }

    [Fact]
    public void UsageOrAnErrorBeforeChoices_IsReadInEveryChunk_EvenWhenTheChunksAreTheSame()
    {
        var withUsage = """{"id":"c","usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3},"choices":[]}"""u8.ToArray();
        var withError = """{"id":"c","error":{"message":"overloaded"},"choices":[]}"""u8.ToArray();
        var assembler = new CompletionAssembler();

        foreach (var _ in new[] { 1, 2 })
        {
            var facts = assembler.Read(withUsage, null, needModel: true);
            Assert.Equal("""{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}""", Encoding.UTF8.GetString(withUsage[facts.Usage!.Value]));
        }
        foreach (var _ in new[] { 1, 2 }) Assert.True(assembler.Read(withError, null, needModel: true).IsError);
    }

    [Fact]
    public void ARepeatedEnvelope_IsSkipped_AndTheReaderGoesOnFromChoices()
    {
        var first = Encoding.UTF8.GetBytes(Envelope + """[{"index":0,"delta":{"content":"a"}}]}""");
        var next = Encoding.UTF8.GetBytes(Envelope + """[],"usage":null}""");
        var envelope = new Gateway.Core.Wire.ChunkEnvelope();
        var reader = envelope.Open(first, out var skipped);
        Assert.Equal(0, skipped);
        while (reader.Read() && !(reader.TokenType == System.Text.Json.JsonTokenType.PropertyName && reader.ValueTextEquals("choices"u8))) { }
        envelope.Keep(first, reader);

        var resumed = envelope.Open(next, out skipped);

        Assert.Equal(Encoding.UTF8.GetByteCount(Envelope), skipped);
        Assert.True(resumed.Read());
        Assert.Equal(System.Text.Json.JsonTokenType.StartArray, resumed.TokenType);
        Assert.Equal(1, resumed.CurrentDepth);
        Assert.True(resumed.Read() && resumed.Read() && resumed.Read() && resumed.Read()); // ] "usage" null }
        Assert.Equal(System.Text.Json.JsonTokenType.EndObject, resumed.TokenType);
        Assert.False(resumed.Read());
        envelope.Open(next.AsSpan(0, skipped), out skipped); // no more than the envelope: read whole
        Assert.Equal(0, skipped);
    }
}
