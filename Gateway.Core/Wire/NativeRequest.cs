using System.Text.Json.Nodes;
using Gateway.Core.Catalog;

namespace Gateway.Core.Wire;

/// <summary>
/// A front door's own request, kept beside its canonical translation for an upstream that speaks the same protocol, which is sent
/// it as the client wrote it (only the model replaced): unknown fields, blocks, built-in tools and cache hints survive.
/// </summary>
/// <param name="Protocol">The protocol the body is in: <see cref="Anthropic"/> or <see cref="OpenAIResponses"/>.</param>
/// <param name="Body">The client's request body (for Responses, with a stored conversation it continues already in its input).</param>
/// <param name="Beta">The client's <c>anthropic-beta</c> header, forwarded to Anthropic upstreams.</param>
/// <param name="Untranslated">What the canonical translation could not carry (a server tool, a PDF, a built-in tool): an upstream that
/// does not take the body itself refuses the request with a 400 naming it rather than answer a different question.</param>
/// <param name="Unbounded">Input the body only names (a file by URL, a stored prompt template): what the upstream bills for it cannot
/// be bounded before the call, so a key with a hard cap may not send it.</param>
public sealed record NativeRequest(string Protocol, JsonObject Body, string? Beta, IReadOnlyList<string> Untranslated,
    IReadOnlyList<string>? Unbounded = null)
{
    /// <summary>Anthropic's Messages API (<c>POST /v1/messages</c>).</summary>
    public const string Anthropic = "anthropic";

    /// <summary>OpenAI's Responses API (<c>POST /v1/responses</c>).</summary>
    public const string OpenAIResponses = "openai.responses";

    /// <summary>
    /// Whether <paramref name="provider"/> takes this body as it is: an Anthropic provider a Messages request, an OpenAI provider that
    /// serves the Responses API (<see cref="ProviderSettings.ServesResponses"/>) a Responses request.
    /// </summary>
    public bool PassesThroughTo(ProviderInfo provider) => Protocol switch
    {
        Anthropic => provider.Protocol == "anthropic",
        OpenAIResponses => provider.Protocol == "openai" && provider.Settings.ServesResponses(provider.BaseUrl),
        _ => false,
    };
}
