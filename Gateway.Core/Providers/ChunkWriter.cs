using System.Text.Json;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers;

/// <summary>
/// Makes the OpenAI <c>chat.completion.chunk</c>s of one streamed answer from a native provider's
/// events: one id, <c>created</c> and model for the whole stream, as OpenAI sends them.
/// </summary>
public sealed class ChunkWriter(string id, long created, string model)
{
    public StreamChunk Role() => Chunk(new ChunkDelta("assistant", ""), null, hasContent: false);

    /// <summary>
    /// An empty delta that still counts as the answer under way (a reasoning or built-in tool step a passed-through stream reports):
    /// it passes the first-token deadline and carries that step's own events to the client.
    /// </summary>
    public StreamChunk Progress() => Role() with { HasContent = true };

    public StreamChunk Text(string text) => Chunk(new ChunkDelta(Content: text), null, hasContent: text.Length > 0);

    public StreamChunk ToolCallStart(int index, string callId, string name, string arguments = "") =>
        Chunk(new ChunkDelta(ToolCalls: [new ToolCallDelta(index, callId, "function", new FunctionCallDelta(name, arguments))]), null, hasContent: true) with { HasToolCall = true };

    public StreamChunk ToolCallArguments(int index, string arguments) =>
        Chunk(new ChunkDelta(ToolCalls: [new ToolCallDelta(index, null, null, new FunctionCallDelta(null, arguments))]), null, hasContent: true) with { HasToolCall = true };

    public StreamChunk Finish(string finishReason) => Chunk(new ChunkDelta(), finishReason, hasContent: false);

    /// <summary>The final usage chunk (<c>"choices":[]</c>), as OpenAI sends it with <c>include_usage</c>.</summary>
    public StreamChunk Usage(ChatUsage usage) => new(JsonSerializer.SerializeToUtf8Bytes(
        new ChatCompletionChunk(id, "chat.completion.chunk", created, model, [], usage),
        GatewayJsonContext.Wire.ChatCompletionChunk), IsUsageOnly: true, HasContent: false);

    private StreamChunk Chunk(ChunkDelta delta, string? finishReason, bool hasContent) => new(JsonSerializer.SerializeToUtf8Bytes(
        new ChatCompletionChunk(id, "chat.completion.chunk", created, model, [new ChunkChoice(0, delta, null, finishReason)]),
        GatewayJsonContext.Wire.ChatCompletionChunk), IsUsageOnly: false, hasContent);
}
