using Gateway.Core.Wire;
using Microsoft.ML.Tokenizers;

namespace Gateway.Core.Tokens;

/// <summary>
/// Counts tokens with OpenAI's o200k_base encoding (Microsoft.ML.Tokenizers, data shipped in the
/// package, no download). Used where a provider gives no usage: the mock provider and streams cut
/// short, whose rows are flagged as estimated.
/// </summary>
public sealed class TokenCounter
{
    // OpenAI's documented chat overhead: 3 tokens per message, 3 to prime the reply.
    private const int PerMessage = 3;
    private const int ReplyPriming = 3;

    private readonly Tokenizer _tokenizer = TiktokenTokenizer.CreateForEncoding("o200k_base");

    public int Count(string text) => string.IsNullOrEmpty(text) ? 0 : _tokenizer.CountTokens(text);

    public int CountPrompt(IReadOnlyList<ChatMessage> messages)
    {
        var total = ReplyPriming;
        foreach (var message in messages)
            total += PerMessage + Count(message.Role ?? "") + Count(message.Text()) + Count(message.Name ?? "");
        return total;
    }
}
