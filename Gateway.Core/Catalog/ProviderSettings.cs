using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gateway.Core.Catalog;

/// <summary>
/// Per-provider protocol settings (the provider row's <c>settings</c>, snake_case JSON). Where an
/// OpenAI-compatible API differs from OpenAI, it is said here, not special-cased in code.
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ProviderSettings
{
    public static readonly ProviderSettings Default = new();


    /// <summary>Anthropic: the <c>anthropic-version</c> header sent on every call.</summary>
    public string? AnthropicVersion { get; init; }

    /// <summary>Anthropic: which sampling parameters the provider's models take: <c>all</c>, <c>one</c> (default: temperature or top_p) or <c>none</c>.</summary>
    public string? AnthropicSampling { get; init; }

    /// <summary>
    /// OpenAI-compatible: the name this API wants for the output limit, <c>max_tokens</c> or
    /// <c>max_completion_tokens</c>; the client's field is renamed to it. Null: sent as the client sent it.
    /// </summary>
    public string? MaxTokensField { get; init; }

    /// <summary>OpenAI-compatible: request fields this API rejects, removed before sending.</summary>
    public IReadOnlyList<string>? DropParams { get; init; }

    /// <summary>
    /// OpenAI-compatible: whether the API accepts <c>stream_options.include_usage</c>. False: it is not
    /// sent, and a stream without usage is metered from the tokenizer (flagged estimated).
    /// </summary>
    public bool? StreamUsage { get; init; }

    /// <summary>
    /// OpenAI-compatible: whether the API continues a last assistant message marked <c>"prefix": true</c> (DeepSeek's chat prefix
    /// completion on its <c>/beta</c> base URL, Mistral). True: a broken stream continues there natively.
    /// </summary>
    public bool? PrefixCompletion { get; init; }

    /// <summary>
    /// Whether non-streaming requests are called streaming and assembled (default true), which gives them the model's first-token
    /// deadline. False: they are sent unstreamed and passed back byte for byte, bounded only by <c>timeout_ms</c>.
    /// </summary>
    public bool? AssembleStreams { get; init; }

    /// <summary>
    /// OpenAI-compatible: whether the API serves OpenAI's Responses API at <c>{base_url}/responses</c>. True: requests through the
    /// gateway's Responses door are passed through to it as the client wrote them (built-in tools included). Default: true for
    /// <c>api.openai.com</c>, false for every other API (they are sent the translation to chat completions).
    /// </summary>
    public bool? ResponsesApi { get; init; }

    /// <summary>Whether an OpenAI-protocol provider at <paramref name="baseUrl"/> serves the Responses API (<see cref="ResponsesApi"/>).</summary>
    public bool ServesResponses(Uri baseUrl) => ResponsesApi ?? baseUrl.Host.Equals("api.openai.com", StringComparison.OrdinalIgnoreCase);

    [JsonIgnore] public bool SendsStreamUsage => StreamUsage ?? true;

    [JsonIgnore] public bool ChangesOpenAIBody => MaxTokensField is not null || DropParams is { Count: > 0 } || StreamUsage == false;

    public static ProviderSettings Parse(string? json) =>
        string.IsNullOrWhiteSpace(json) || json == "{}" ? Default : JsonSerializer.Deserialize(json, ProviderSettingsJson.Default.ProviderSettings) ?? Default;

    public string ToJson() => JsonSerializer.Serialize(this, ProviderSettingsJson.Default.ProviderSettings);

    /// <summary>Why these settings are invalid, or null.</summary>
    public string? Problem() =>
        MaxTokensField is not (null or "max_tokens" or "max_completion_tokens")
            ? "'max_tokens_field' must be 'max_tokens' or 'max_completion_tokens'."
            : DropParams?.Any(p => p is "model" or "messages" or "stream") == true
                ? "'drop_params' cannot drop model, messages or stream."
                : AnthropicSampling is not (null or "all" or "one" or "none")
                    ? "'anthropic_sampling' must be 'all', 'one' or 'none'."
                    : null;
}

/// <summary>A provider's settings as its column keeps them: snake_case, defaults left out.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingDefault)]
[JsonSerializable(typeof(ProviderSettings))]
internal sealed partial class ProviderSettingsJson : JsonSerializerContext;
