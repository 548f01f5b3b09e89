using System.Buffers;
using System.IO.Pipelines;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text;
using BenchmarkDotNet.Attributes;

namespace Micro;

/// <summary>
/// One streamed answer's events (16 OpenAI chunks and [DONE], each flushed) written the gateway's way (straight into the response's
/// PipeWriter) and through System.Net.ServerSentEvents' <see cref="SseFormatter"/> onto the response stream, as
/// <c>TypedResults.ServerSentEvents</c> writes them. The sink is a <see cref="Pipe"/> drained by a reader task, as Kestrel's
/// response body is a pipe its transport drains (a PipeWriter straight over a stream would skip the flush that costs).
/// </summary>
[MemoryDiagnoser]
public class SseBenchmarks
{
    private static readonly byte[] Chunk = Encoding.UTF8.GetBytes(
        """{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_06737a9306","choices":[{"index":0,"delta":{"content":" word"},"logprobs":null,"finish_reason":null}]}""");

    private const int Chunks = 16;

    private readonly Pipe _pipe = new(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
    private PipeWriter _output = null!;
    private Task _drain = Task.CompletedTask;

    [GlobalSetup]
    public void Setup()
    {
        _output = _pipe.Writer;
        _drain = Task.Run(async () =>
        {
            while (true)
            {
                var read = await _pipe.Reader.ReadAsync();
                _pipe.Reader.AdvanceTo(read.Buffer.End);
                if (read.IsCompleted) return;
            }
        });
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _pipe.Writer.Complete();
        _drain.GetAwaiter().GetResult();
    }

    [Benchmark(Baseline = true, Description = "SSE: hand-written into the PipeWriter, flush per event")]
    public async Task HandWritten()
    {
        for (var i = 0; i < Chunks; i++)
        {
            _output.Write("data: "u8);
            _output.Write(Chunk);
            _output.Write("\n\n"u8);
            await _output.FlushAsync();
        }
        _output.Write("data: [DONE]\n\n"u8);
        await _output.FlushAsync();
    }

    [Benchmark(Description = "SSE: SseFormatter onto the response stream (TypedResults.ServerSentEvents)")]
    public Task Formatter() =>
        SseFormatter.WriteAsync(Items(), _output.AsStream(leaveOpen: true), static (item, writer) => writer.Write(item.Data.Span));

    private static async IAsyncEnumerable<SseItem<ReadOnlyMemory<byte>>> Items([EnumeratorCancellation] CancellationToken ct = default)
    {
        for (var i = 0; i < Chunks; i++) yield return new SseItem<ReadOnlyMemory<byte>>(Chunk);
        yield return new SseItem<ReadOnlyMemory<byte>>("[DONE]"u8.ToArray());
        await Task.CompletedTask;
    }
}
