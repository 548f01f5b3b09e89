namespace Gateway.Core.Wire;

/// <summary>
/// What one OpenAI <c>chat.completion.chunk</c> carried that a stream is metered and primed by, found in one forward read of it:
/// by the stream reader alone for a relayed stream, by <see cref="Chat.CompletionAssembler"/> while it joins a non-streamed
/// answer (so that answer's chunks are read once, not twice).
/// </summary>
internal struct ChunkFacts
{
    /// <summary>False when the chunk is JSON but not an object (nothing else is then read).</summary>
    public bool IsObject;

    /// <summary>A top-level <c>error</c> object: the provider broke the stream with an error event.</summary>
    public bool IsError;

    /// <summary>A <c>choices</c> array with at least one element.</summary>
    public bool HasChoices;

    /// <summary>Non-empty delta <c>content</c> or a delta <c>tool_calls</c> array: the answer has begun.</summary>
    public bool HasContent;

    /// <summary>A delta <c>tool_calls</c> array.</summary>
    public bool HasToolCall;

    /// <summary>The chunk's last top-level <c>model</c> that is a string (read only until a stream knows its served model).</summary>
    public string? Model;

    /// <summary>Where the chunk's <c>usage</c> object is, when it has one.</summary>
    public Range? Usage;
}
