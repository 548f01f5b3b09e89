using System.Diagnostics;

namespace Gateway.Core.Telemetry;

/// <summary>
/// The gateway's trace source and the attribute names its spans and metrics share. Names follow OpenTelemetry's GenAI
/// semantic conventions (open-telemetry/semantic-conventions-genai, status Development, on semantic conventions v1.41):
/// <c>gen_ai.*</c> where the convention has a name, <c>gateway.*</c> for what only a gateway knows. No attribute ever
/// carries a key, an end user, a prompt, a completion or a secret.
/// </summary>
public static class GatewayTelemetry
{
    /// <summary>The <see cref="ActivitySource"/> name (traces) and, in <see cref="Metering.GatewayMetrics"/>, the meter name.</summary>
    public const string SourceName = "LlmGateway";

    internal static readonly ActivitySource Source = new(SourceName);

    /// <summary><c>gen_ai.operation.name</c> of chat completions.</summary>
    public const string Chat = "chat";

    /// <summary><c>gen_ai.operation.name</c> of embeddings.</summary>
    public const string Embeddings = "embeddings";

    internal const string OperationName = "gen_ai.operation.name";
    internal const string ProviderName = "gen_ai.provider.name";
    internal const string RequestModel = "gen_ai.request.model";
    internal const string ResponseModel = "gen_ai.response.model";
    internal const string TokenType = "gen_ai.token.type";
    internal const string ErrorType = "error.type";
    /// <summary>The provider as configured in the gateway (e.g. <c>openai-eu</c>, <c>deepseek</c>): what operators route by.</summary>
    internal const string GatewayProvider = "gateway.provider";

    /// <summary>
    /// <c>gen_ai.provider.name</c> for a wire protocol: the convention's well-known value where one applies. It names the
    /// telemetry "flavor", so every OpenAI-compatible API (DeepSeek, Mistral, Ollama…) is <c>openai</c>; which one it was
    /// is in <c>gateway.provider</c> and <c>server.address</c>.
    /// </summary>
    internal static string ProviderFlavor(string protocol) => protocol switch
    {
        "anthropic" => "anthropic",
        "gemini" => "gcp.gemini", // generativelanguage.googleapis.com, the convention's name for it
        "openai" => "openai",
        _ => protocol,
    };

    /// <summary>The span of one metered /v1 request (kind Internal, under ASP.NET Core's server span); null when nobody listens.</summary>
    public static Activity? StartRequest(string operation, string requestId)
    {
        var activity = Source.StartActivity(operation == Embeddings ? "gateway embeddings" : "gateway chat");
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag(OperationName, operation);
            activity.SetTag("gateway.request.id", requestId);
        }
        return activity;
    }

    /// <summary>A candidate passed over without a call (circuit open, cooling down, its provider already failed), as an event on the request's span.</summary>
    internal static void Skipped(string provider, string model, string reason)
    {
        if (Activity.Current is not { IsAllDataRequested: true } current || current.Source != Source) return;
        current.AddEvent(new ActivityEvent("gateway.candidate_skipped", tags: new ActivityTagsCollection
        {
            [GatewayProvider] = provider,
            [RequestModel] = model,
            ["gateway.skip_reason"] = reason,
        }));
    }
}
