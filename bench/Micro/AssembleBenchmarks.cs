using System.Net;
using System.Text;
using BenchmarkDotNet.Attributes;
using Gateway.Core.Chat;
using Gateway.Core.Providers.OpenAI;

namespace Micro;

/// <summary>
/// A non-streaming request's answer, which the gateway asks for streamed and joins: the fake upstream's 16 content chunks, the
/// finishing chunk and the usage chunk (bench/FakeUpstream), read by the OpenAI stream reader and assembled into one
/// chat.completion. Once as the gateway does it (the assembler notes what the reader meters while it joins: one read of each
/// chunk), once as it was done before (the reader's read, then the assembler's: two).
/// </summary>
public class AssembleBenchmarks
{
    private const string Chunk = """{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}""";

    private readonly byte[] _body = Encoding.UTF8.GetBytes(
        string.Concat(Enumerable.Repeat($"data: {Chunk}\n\n", 16))
        + """data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}""" + "\n\n"
        + """data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":16,"total_tokens":35}}""" + "\n\n"
        + "data: [DONE]\n\n");

    [Benchmark(Description = "assemble: 18 chunks, one read each")]
    public Task<byte[]> OnePass() => AssembleAsync(inReader: true);

    [Benchmark(Description = "assemble: 18 chunks, read, then joined")]
    public Task<byte[]> TwoPasses() => AssembleAsync(inReader: false);

    private async Task<byte[]> AssembleAsync(bool inReader)
    {
        var assembler = new CompletionAssembler();
        var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(_body) };
        await using var stream = new OpenAIStream("bench", response, new CancellationTokenSource(), CancellationToken.None, inReader ? assembler : null);
        await foreach (var chunk in stream.ReadChunksAsync(CancellationToken.None))
            if (!stream.Assembles) assembler.Add(chunk.Json);
        return assembler.Build(stream.ServedModel);
    }
}
