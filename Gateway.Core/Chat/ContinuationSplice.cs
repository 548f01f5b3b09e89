namespace Gateway.Core.Chat;

/// <summary>
/// Joins a continuation's text to the partial answer the client already has, so that the client never gets the partial answer
/// twice: a continuation that starts by repeating all of it (an API that echoes a prefix, a model that restates it) has the
/// repetition removed, and after a partial answer that ended in whitespace (trimmed for a prefill) a continuation that starts by
/// saying that whitespace again has it dropped once; whitespace of its own after it stays (a code line's indentation after a
/// newline). Text that may still be such a repetition is held back until it is known not to be one; a continuation that ends
/// while still repeating the partial answer adds nothing.
/// </summary>
public sealed class ContinuationSplice(string partialAnswer)
{
    private readonly System.Text.StringBuilder _client = new(partialAnswer);
    private int _repeated; // characters of the partial answer the continuation has repeated so far
    private bool _decided;
    private readonly string _trailing = partialAnswer[partialAnswer.TrimEnd().Length..]; // the whitespace the client has at the end
    private int _trailingSaid; // how much of it the continuation has said again
    private bool _afterWhitespace = partialAnswer.Length > 0 && char.IsWhiteSpace(partialAnswer[^1]);

    /// <summary>Everything the client has of the answer: the partial answer and what it got of the continuation.</summary>
    public string ClientText => _client.ToString();

    /// <summary>What the client gets of the continuation's next piece of text (empty while it is held back or dropped).</summary>
    public string Next(string text)
    {
        if (!_decided)
        {
            var rest = partialAnswer.AsSpan(_repeated);
            if (rest.StartsWith(text, StringComparison.Ordinal))
            {
                _repeated += text.Length;
                _decided = _repeated == partialAnswer.Length && partialAnswer.Length > 0;
                return "";
            }
            _decided = true;
            if (text.AsSpan().StartsWith(rest, StringComparison.Ordinal))
            {
                text = text[rest.Length..]; // the repetition ends within this piece
            }
            else if (_repeated > 0)
            {
                // Not a repetition after all: what was held back goes out with it.
                text = partialAnswer[.._repeated] + text;
                _afterWhitespace = false;
            }
        }
        if (_afterWhitespace)
        {
            var said = 0;
            while (said < text.Length && _trailingSaid < _trailing.Length && text[said] == _trailing[_trailingSaid])
            {
                said++;
                _trailingSaid++;
            }
            text = text[said..];
            if (text.Length == 0) return "";
            _afterWhitespace = false;
        }
        _client.Append(text);
        return text;
    }
}
