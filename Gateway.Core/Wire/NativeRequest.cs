using System.Text.Json.Nodes;

namespace Gateway.Core.Wire;

/// <summary>
/// A front door's own request, kept beside its canonical translation for an upstream that speaks the same protocol, which is sent
/// it as the client wrote it (only the model replaced): unknown fields, blocks and cache hints survive.
/// </summary>
/// <param name="Protocol">The protocol the body is in (<c>anthropic</c>).</param>
/// <param name="Body">The client's request body.</param>
/// <param name="Beta">The client's <c>anthropic-beta</c> header, forwarded to Anthropic upstreams.</param>
/// <param name="Untranslated">What the canonical translation could not carry (a server tool, a PDF): an upstream of another protocol
/// refuses the request with a 400 naming it rather than answer a different question.</param>
public sealed record NativeRequest(string Protocol, JsonObject Body, string? Beta, IReadOnlyList<string> Untranslated);
