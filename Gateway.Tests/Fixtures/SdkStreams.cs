using System.Text;
using OpenAI.Chat;

namespace Gateway.Tests.Fixtures;

/// <summary>Reads a streamed answer with the official OpenAI SDK, as a client application would.</summary>
public static class SdkStreams
{
    public static async Task<(ChatFinishReason? Finish, string Text, List<ChatToolCall> Calls)> CollectAsync(
        ChatClient chat, IEnumerable<OpenAI.Chat.ChatMessage> messages, ChatCompletionOptions options)
    {
        ChatFinishReason? finish = null;
        var text = new StringBuilder();
        var calls = new Dictionary<int, (string Id, string Name, StringBuilder Arguments)>();
        await foreach (var update in chat.CompleteChatStreamingAsync(messages, options))
        {
            finish ??= update.FinishReason;
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            foreach (var call in update.ToolCallUpdates)
            {
                if (!calls.TryGetValue(call.Index, out var entry)) calls[call.Index] = entry = (call.ToolCallId, call.FunctionName, new StringBuilder());
                entry.Arguments.Append(call.FunctionArgumentsUpdate?.ToString());
            }
        }
        return (finish, text.ToString(), calls.OrderBy(c => c.Key)
            .Select(c => ChatToolCall.CreateFunctionToolCall(c.Value.Id, c.Value.Name, BinaryData.FromString(c.Value.Arguments.ToString()))).ToList());
    }
}
