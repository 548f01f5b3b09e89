using System.Text.Json;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers.Anthropic;

internal static class AnthropicResponseMapper
{
    /// <summary>Anthropic stop_reason → OpenAI finish_reason.</summary>
    public static string FinishReason(string? stopReason) => stopReason switch
    {
        "max_tokens" or "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop", // end_turn, stop_sequence, pause_turn
    };

    /// <summary>
    /// usage → OpenAI usage. Anthropic's input_tokens excludes cache reads and writes, which are input too:
    /// prompt = input + cache_creation + cache_read, cached = cache_read.
    /// </summary>
    public static (TokenUsage Usage, ChatUsage Wire) Usage(int input, int cacheCreation, int cacheRead, int output)
    {
        var prompt = input + cacheCreation + cacheRead;
        return (new TokenUsage(prompt, output, cacheRead), new ChatUsage(prompt, output, prompt + output, new PromptTokensDetails(cacheRead)));
    }

    public static (int Input, int CacheCreation, int CacheRead, int Output) Counts(JsonElement usage) =>
        (TokenUsage.Int(usage, "input_tokens"), TokenUsage.Int(usage, "cache_creation_input_tokens"),
         TokenUsage.Int(usage, "cache_read_input_tokens"), TokenUsage.Int(usage, "output_tokens"));
}
