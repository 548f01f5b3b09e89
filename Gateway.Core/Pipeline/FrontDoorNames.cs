namespace Gateway.Core.Pipeline;

/// <summary>The front doors' names as usage rows record them (<c>usage_events.front_door</c>).</summary>
public static class FrontDoorNames
{
    /// <summary><c>POST /v1/chat/completions</c>.</summary>
    public const string OpenAIChat = "openai.chat_completions";

    /// <summary><c>POST /v1/embeddings</c>.</summary>
    public const string OpenAIEmbeddings = "openai.embeddings";

    /// <summary><c>POST /v1/messages</c>.</summary>
    public const string AnthropicMessages = "anthropic.messages";

    /// <summary><c>POST /v1/responses</c>.</summary>
    public const string OpenAIResponses = "openai.responses";
}
