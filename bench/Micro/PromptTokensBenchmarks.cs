using BenchmarkDotNet.Attributes;
using Gateway.Core.Tokens;
using Microsoft.Extensions.DependencyInjection;

namespace Micro;

/// <summary>
/// The prompt's token count with the o200k tokenizer (<see cref="TokenCounter.CountPrompt"/>), on the benchmarks' request: a
/// part of the routing decision (rules with prompt-size conditions) and of the budget check (the worst case), shown alone so
/// their figures can be read; and on a long prompt, to show how that part grows with the prompt.
/// </summary>
public class PromptTokensBenchmarks
{
    private HotPathFixture _fixture = null!;
    private TokenCounter _tokens = null!;
    private string _longPrompt = "";

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _fixture = await HotPathFixture.GetAsync();
        _tokens = _fixture.Services.GetRequiredService<TokenCounter>();
        // 2,700 tokens of prose: a document pasted into a question.
        _longPrompt = string.Join(" ", Enumerable.Range(0, 100).Select(i =>
            $"Paragraph {i}: the shipment of order {48213 + i} left the warehouse in Rotterdam on day {i % 28 + 1} and was handed to the carrier."));
    }

    [Benchmark(Description = "prompt token count (part of routing and budget)")]
    public int CountPrompt() => _tokens.CountPrompt(_fixture.AutoRequest.Messages!);

    [Benchmark(Description = "prompt token count, 2,700-token text")]
    public int CountLongText() => _tokens.Count(_longPrompt);
}
