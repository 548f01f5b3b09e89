using Gateway.Core.Wire;

namespace Gateway.Core.Tokens;

/// <summary>
/// Counts tokens with OpenAI's o200k_base encoding (<see cref="O200kEncoding"/>, its vocabulary shipped in
/// Microsoft.ML.Tokenizers.Data.O200kBase, no download). Used where a provider gives no usage: the mock provider and streams cut
/// short, whose rows are flagged as estimated.
/// </summary>
public sealed class TokenCounter
{
    // OpenAI's documented chat overhead: 3 tokens per message, 3 to prime the reply.
    private const int PerMessage = 3;
    private const int ReplyPriming = 3;

    // Byte-pair encoding is quadratic in the length of one pre-tokenized piece (a run of letters, of punctuation, of
    // spaces): counted whole, 200,000 characters of 字 take minutes. Longer texts are counted in slices cut before a
    // word's leading space (the count is unchanged for prose and code), and a run with no such place in slices of RunSlice.
    private const int Slice = 256;
    private const int RunSlice = 64;

    // Loaded on the first count (≈ 4 MB): an instance whose requests never need a count (no capped key, no TPM limit, no
    // token rule, providers that report usage) never holds it.
    private readonly Lazy<O200kEncoding> _encoding = new(O200kEncoding.Load);

    public int Count(string text)
    {
        if (string.IsNullOrEmpty(text)) return 0;
        var tokenizer = _encoding.Value;
        if (text.Length <= Slice) return tokenizer.Count(text);
        var total = 0;
        for (var start = 0; start < text.Length;)
        {
            var end = start + Slice >= text.Length ? text.Length : Cut(text, start);
            total += tokenizer.Count(text.AsSpan(start, end - start));
            start = end;
        }
        return total;
    }

    // Where the slice starting at start ends: before the last space that begins a word, else after RunSlice characters
    // (never between the halves of a surrogate pair).
    private static int Cut(string text, int start)
    {
        for (var i = start + Slice - 1; i > start; i--)
        {
            if (char.IsWhiteSpace(text[i]) && !char.IsWhiteSpace(text[i - 1]) && !char.IsWhiteSpace(text[i + 1]))
                return i;
        }
        var cut = start + RunSlice;
        return char.IsHighSurrogate(text[cut - 1]) ? cut - 1 : cut;
    }

    public int CountPrompt(IReadOnlyList<ChatMessage> messages)
    {
        var total = ReplyPriming;
        foreach (var message in messages)
            total += PerMessage + Count(message.Role ?? "") + Count(message.Text()) + Count(message.Name ?? "");
        return total;
    }
}
