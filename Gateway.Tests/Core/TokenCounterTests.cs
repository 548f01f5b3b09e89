using System.Diagnostics;
using Gateway.Core.Tokens;
using Microsoft.ML.Tokenizers;

namespace Gateway.Tests.Core;

public sealed class TokenCounterTests
{
    private static readonly TokenCounter Counter = new();
    private static readonly Tokenizer Whole = TiktokenTokenizer.CreateForEncoding("o200k_base");

    [Theory]
    [InlineData("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.\n\n")]
    [InlineData("public static int Count(string text) { if (string.IsNullOrEmpty(text)) return 0; }\n    // a comment\n")]
    [InlineData("""{"model":"gpt-4o","messages":[{"role":"user","content":"Hello there, how are you?"}],"temperature":0.7}""")]
    public void Count_LongProseCodeOrJson_MatchesCountingItWhole(string piece)
    {
        var text = string.Concat(Enumerable.Repeat(piece, 60));

        Assert.Equal(Whole.CountTokens(text), Counter.Count(text));
    }

    [Theory]
    [InlineData("字")]
    [InlineData("a")]
    [InlineData("\"")]
    [InlineData(" ")]
    [InlineData("😀")]
    public void Count_MegabyteRunWithoutWordBreaks_TakesSecondsNotMinutes(string unit)
    {
        // Counted whole, 200,000 characters of 字 take minutes (BPE is quadratic in one word's length).
        var text = string.Concat(Enumerable.Repeat(unit, 1_000_000 / unit.Length));
        var clock = Stopwatch.StartNew();

        var tokens = Counter.Count(text);

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"{clock.Elapsed} for a million characters of '{unit}'");
        Assert.InRange(tokens, 1, text.Length);
    }
}
