namespace Gateway.Core.Providers.Gemini;

/// <summary>
/// OpenAI tool-call ids for Gemini function calls. Gemini 3 puts a <c>thoughtSignature</c> on
/// function-call parts that must come back on the same part in the next turn
/// (https://ai.google.dev/gemini-api/docs/thought-signatures), and OpenAI clients only echo the
/// tool-call id, so the signature travels inside it: <c>call_&lt;12 hex&gt;_&lt;n&gt;_s&lt;base64url signature&gt;</c>
/// (only <c>[A-Za-z0-9_-]</c>, which every provider's id rules accept).
/// </summary>
internal static partial class GeminiToolCallIds
{
    public static string Encode(Guid requestId, int index, string? thoughtSignature)
    {
        var id = $"call_{requestId.ToString("N")[^12..]}_{index}";
        return thoughtSignature is null ? id : $"{id}_s{thoughtSignature.TrimEnd('=').Replace('+', '-').Replace('/', '_')}";
    }

    /// <summary>The thought signature carried in an id of ours, or null (also for ids made elsewhere).</summary>
    public static string? Signature(string toolCallId)
    {
        var match = Ours().Match(toolCallId);
        if (!match.Success) return null;
        var base64 = match.Groups[1].Value.Replace('-', '+').Replace('_', '/');
        return base64.PadRight(base64.Length + (4 - base64.Length % 4) % 4, '=');
    }

    [System.Text.RegularExpressions.GeneratedRegex("^call_[0-9a-f]{12}_[0-9]+_s([A-Za-z0-9_-]+)$")]
    private static partial System.Text.RegularExpressions.Regex Ours();
}
