using BenchmarkDotNet.Attributes;
using Gateway.Core.Tokens;
using Microsoft.Extensions.DependencyInjection;

namespace Micro;

/// <summary>
/// The prompt's token count with the o200k tokenizer (<see cref="TokenCounter.CountPrompt"/>), on the benchmarks' request: a
/// part of the routing decision (rules with prompt-size conditions) and of the budget check (the worst case), shown alone so
/// their figures can be read.
/// </summary>
public class PromptTokensBenchmarks
{
    private HotPathFixture _fixture = null!;
    private TokenCounter _tokens = null!;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _fixture = await HotPathFixture.GetAsync();
        _tokens = _fixture.Services.GetRequiredService<TokenCounter>();
    }

    [Benchmark(Description = "prompt token count (part of routing and budget)")]
    public int CountPrompt() => _tokens.CountPrompt(_fixture.AutoRequest.Messages!);
}
