using System.Text.Json;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers.Gemini;

/// <summary>Gemini <c>GenerateContentResponse</c> pieces → OpenAI terms (finish reasons, usage, tool calls).</summary>
internal static class GeminiResponseMapper
{
    /// <summary>
    /// Gemini finish reasons (https://ai.google.dev/api/generate-content#FinishReason) as OpenAI's.
    /// A function call finishes with STOP, so the presence of calls decides "tool_calls". Reasons that
    /// mean the model produced an unusable call are not dressed up as a normal stop: they return null
    /// and the caller reports an upstream error.
    /// </summary>
    public static string? FinishReason(string? reason, bool hasToolCalls) => reason switch
    {
        "MAX_TOKENS" => "length",
        "SAFETY" or "RECITATION" or "BLOCKLIST" or "PROHIBITED_CONTENT" or "SPII" or "LANGUAGE"
            or "IMAGE_SAFETY" or "IMAGE_PROHIBITED_CONTENT" or "IMAGE_RECITATION" => "content_filter",
        "MALFORMED_FUNCTION_CALL" or "UNEXPECTED_TOOL_CALL" or "TOO_MANY_TOOL_CALLS" or "MISSING_THOUGHT_SIGNATURE" => null,
        _ => hasToolCalls ? "tool_calls" : "stop",
    };

    /// <summary>
    /// usageMetadata → usage. Thoughts are billed as output but not counted in candidatesTokenCount, and
    /// tool-use prompt tokens are input (totalTokenCount = prompt + candidates + toolUsePrompt + thoughts).
    /// </summary>
    public static (TokenUsage Usage, ChatUsage Wire) Usage(JsonElement metadata)
    {
        var prompt = TokenUsage.Int(metadata, "promptTokenCount") + TokenUsage.Int(metadata, "toolUsePromptTokenCount");
        var thoughts = TokenUsage.Int(metadata, "thoughtsTokenCount");
        var completion = TokenUsage.Int(metadata, "candidatesTokenCount") + thoughts;
        var cached = TokenUsage.Int(metadata, "cachedContentTokenCount");
        return (new TokenUsage(prompt, completion, cached),
            new ChatUsage(prompt, completion, prompt + completion, new PromptTokensDetails(cached), new CompletionTokensDetails(thoughts)));
    }

    /// <summary>
    /// <see cref="Parts"/> for a stream chunk, plus a signature that arrived on its own (an empty-text part
    /// with <c>thoughtSignature</c>), which belongs to the function call before it.
    /// </summary>
    public static (string Text, List<(string Name, string Arguments, string? Signature)> Calls, string? LateSignature) StreamParts(JsonElement candidate)
    {
        var (text, calls) = Parts(candidate);
        string? late = null;
        if (candidate.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.Object
            && content.TryGetProperty("parts", out var parts) && parts.ValueKind == JsonValueKind.Array)
        {
            late = parts.EnumerateArray()
                .Where(p => p.ValueKind == JsonValueKind.Object && !p.TryGetProperty("functionCall", out _) && OpenAIRequestView.Str(p, "text") is null or "")
                .Select(p => OpenAIRequestView.Str(p, "thoughtSignature")).FirstOrDefault(s => s is not null);
        }
        return (text, calls, late);
    }

    /// <summary>A candidate's text (thought parts excluded) and function calls, in order.</summary>
    public static (string Text, List<(string Name, string Arguments, string? Signature)> Calls) Parts(JsonElement candidate)
    {
        var text = new System.Text.StringBuilder();
        var calls = new List<(string, string, string?)>();
        if (candidate.ValueKind != JsonValueKind.Object || !candidate.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.Object
            || !content.TryGetProperty("parts", out var parts) || parts.ValueKind != JsonValueKind.Array)
            return ("", calls);
        foreach (var part in parts.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object) continue;
            if (part.TryGetProperty("thought", out var thought) && thought.ValueKind == JsonValueKind.True) continue;
            if (OpenAIRequestView.Str(part, "text") is { } t) text.Append(t);
            if (part.TryGetProperty("functionCall", out var call) && OpenAIRequestView.Str(call, "name") is { } name)
            {
                var args = call.TryGetProperty("args", out var a) && a.ValueKind == JsonValueKind.Object ? OpenAIRequestView.Compact(a) : "{}";
                calls.Add((name, args, OpenAIRequestView.Str(part, "thoughtSignature")));
            }
        }
        return (text.ToString(), calls);
    }
}
