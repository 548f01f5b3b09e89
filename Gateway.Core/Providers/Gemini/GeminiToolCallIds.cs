namespace Gateway.Core.Providers.Gemini;

/// <summary>
/// OpenAI tool-call ids for Gemini function calls. Gemini 3 puts a <c>thoughtSignature</c> on
/// function-call parts that must come back on the same part in the next turn
/// (https://ai.google.dev/gemini-api/docs/thought-signatures), and OpenAI clients only echo the
/// tool-call id, so the signature travels inside it: <c>call_…~&lt;base64url signature&gt;</c>.
/// </summary>
internal static class GeminiToolCallIds
{
    private const char Separator = '~'; // not in the base64url alphabet

    public static string Encode(Guid requestId, int index, string? thoughtSignature)
    {
        var id = $"call_{requestId.ToString("N")[^12..]}_{index}";
        return thoughtSignature is null ? id : id + Separator + thoughtSignature.TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    /// <summary>The thought signature carried in an id, or null.</summary>
    public static string? Signature(string toolCallId)
    {
        var at = toolCallId.IndexOf(Separator, StringComparison.Ordinal);
        if (at < 0 || at == toolCallId.Length - 1) return null;
        var base64 = toolCallId[(at + 1)..].Replace('-', '+').Replace('_', '/');
        return base64.PadRight(base64.Length + (4 - base64.Length % 4) % 4, '=');
    }
}
