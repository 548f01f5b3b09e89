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
    [InlineData("Hello, world! It's 2026; we're testing   spaces\tand\r\nnewlines.\n\n\n")]
    [InlineData("Le cœur a ses raisons que la raison ne connaît point. ÇA VA? Ñandú, straße, İstanbul")]
    [InlineData("日本語のテキストと中文文本，还有한국어 텍스트。Русский текст и ελληνικά.")]
    [InlineData("emoji 😀👍🏽👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 and math ∑∫√ 1234567890 3.14159 1,000,000")]
    [InlineData("<|endoftext|>before<|endofprompt|> after <|endoftext and <| partial |>")]
    [InlineData("def f(x):\n    return x**2  # square\n\n\tif x != 0: print(f'{x!r}')\n")]
    [InlineData("I'M SHOUTING, YOU'LL HEAR; he'd've done it. DON'T 's 'T 're 'VE 'm 'Ll 'd")]
    [InlineData("a\u0301e\u0308 combining ﬁ ligature \u200b zero width \u00a0nbsp \uFEFF bom")]
    public void Count_MatchesMicrosoftsTokenizer(string text)
    {
        Assert.Equal(Whole.CountTokens(text), Counter.Count(text));
    }

    [Fact]
    public void Count_RandomTextsFromAWideAlphabet_MatchMicrosoftsTokenizer()
    {
        // Letters of several cases and scripts, marks, digits, apostrophes, spaces of every kind, line ends, symbols, emoji
        // (surrogate pairs) and the special tokens' pieces: where the pattern's alternatives meet.
        string[] alphabet =
        [
            "a", "Z", "é", "É", "ß", "ǅ", "ʰ", "字", "カ", "한", "ж", "Ж", "\u0301", "0", "7", "٣", "'", "'s", "'LL", " ", "  ",
            "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", ".", ",", "!", "/", "-", "_", "(", "]", "{", "\"", "$", "€", "😀", "🏽",
            "\u200d", "<|", "|>", "endoftext", "<|endoftext|>", "https://", "  \n", "1234",
        ];
        var random = new Random(20261205);
        for (var i = 0; i < 3_000; i++)
        {
            var text = string.Concat(Enumerable.Range(0, random.Next(1, 40)).Select(_ => alphabet[random.Next(alphabet.Length)]));
            Assert.True(Whole.CountTokens(text) == Counter.Count(text), $"counts differ for \"{text}\"");
        }
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
