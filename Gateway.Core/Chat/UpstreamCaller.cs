using System.Collections.Frozen;
using Gateway.Core.Catalog;
using Gateway.Core.Errors;
using Gateway.Core.Failover;
using Gateway.Core.Keys;
using Gateway.Core.Metering;
using Gateway.Core.Providers;
using Gateway.Core.Routing;
using Gateway.Core.Telemetry;
using Gateway.Core.Tokens;
using System.Text.Json;
using Gateway.Core.Wire;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Gateway.Core.Chat;

/// <summary>
/// Step 8 of the pipeline (<see cref="Pipeline.ChatPipeline"/>): calls the candidate chain with failover. Non-streaming answers are
/// assembled from streams where that is safe (so first-token deadlines apply), and a broken stream continues on the next candidate.
/// </summary>
public sealed partial class UpstreamCaller(ModelCatalog catalog, IEnumerable<IChatProvider> providers, IEnumerable<IEmbeddingProvider> embedders,
    TokenCounter tokens, FailoverExecutor failover, IOptions<FailoverOptions> failoverOptions, ILogger<UpstreamCaller> log)
{
    private readonly FrozenDictionary<string, IChatProvider> _providers = providers.ToFrozenDictionary(p => p.Protocol, StringComparer.Ordinal);
    private readonly FrozenDictionary<string, IEmbeddingProvider> _embedders = embedders.ToFrozenDictionary(p => p.Protocol, StringComparer.Ordinal);

    /// <summary>Embeddings over the model's candidate chain (fallbacks whose protocol cannot embed are passed over).</summary>
    public Task<FailoverResult<UpstreamCompletion>> EmbedAsync(Guid requestId, EmbeddingRequest request, ModelRoute first, CancellationToken ct) =>
        failover.RunAsync(GatewayTelemetry.Embeddings, catalog.Chain(first), (route, token) => _embedders.TryGetValue(route.Provider.Protocol, out var embedder)
            ? embedder.EmbedAsync(new EmbeddingCall(requestId, request, route), token)
            : Task.FromResult<UpstreamResult<UpstreamCompletion>>(new UpstreamFailure(UpstreamFailureKind.Misconfigured, route.Provider.Name, "it cannot embed")), ct);

    /// <summary>
    /// A non-streaming completion over the model's candidate chain. Each candidate is called streaming where it can be
    /// (<see cref="Assembles"/>) and its chunks assembled into one <c>chat.completion</c>, so the model's first-token deadline
    /// applies as it does to streams: a candidate that hangs, stalls before its first token or breaks half-way fails over
    /// while the client has received nothing. Elsewhere the call is one unstreamed request, bounded by <c>timeout_ms</c>.
    /// </summary>
    /// <param name="mayCallAgain">Asked before another candidate is called after an attempt the provider billed (see
    /// <see cref="FailoverExecutor.RunAsync{T}"/>): a capped key's reservation is topped up by that attempt's cost first.</param>
    /// <param name="reading">Told of each candidate whose stream is being assembled, and of none once its attempt has ended, so
    /// that a client who leaves meanwhile is charged what that candidate had produced.</param>
    public Task<FailoverResult<UpstreamCompletion>> CompleteAsync(Guid requestId, ChatCompletionRequest request, IReadOnlyList<ModelRoute> chain,
        Func<ModelRoute, TokenUsage, bool>? mayCallAgain, CancellationToken ct, Action<ModelRoute, UpstreamStream?>? reading = null) =>
        failover.RunAsync(GatewayTelemetry.Chat, chain, (route, token) => Untranslatable(request, route) is { } refused
            ? Task.FromResult<UpstreamResult<UpstreamCompletion>>(refused)
            : Assembles(route, request)
            ? CompleteStreamingAsync(requestId, request, route, reading, token)
            : Provider(route).CompleteAsync(new UpstreamCall(requestId, request, route), token), ct, mayCallAgain);

    // Request fields whose streamed form carries more than the assembler joins (log probabilities, audio, search annotations).
    private static readonly string[] UnassembledFields = ["logprobs", "top_logprobs", "modalities", "audio", "web_search_options"];

    // Provider/model pairs that refused a streamed call (400) that unstreamed they took: called unstreamed from then on.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _streamRefused = new(StringComparer.Ordinal);

    /// <summary>
    /// Whether a non-streaming request is called streaming and assembled on this candidate: not for the offline mock, a provider
    /// whose <c>assemble_streams</c> is false, an API whose streams carry no usage (<c>stream_usage: false</c>: unstreamed it
    /// reports its usage, which an assembled answer would trade for an estimate), a model that refused a streamed call, more
    /// than one choice, fields whose streamed form the assembler does not join, or a request passed through in the candidate's own
    /// protocol (its answer goes back as the upstream wrote it).
    /// </summary>
    private bool Assembles(ModelRoute route, ChatCompletionRequest request) =>
        route.Provider.Protocol != "mock" && route.Provider.Settings.AssembleStreams != false && route.Provider.Settings.SendsStreamUsage
        && request.Native?.PassesThroughTo(route.Provider) != true // passed through: the answer as the upstream wrote it, unstreamed
        && request.N is null or 1
        && !_streamRefused.ContainsKey(ProviderHealth.ModelKey(route.Provider.Name, route.UpstreamModel))
        && (request.Extra is null || !Array.Exists(UnassembledFields, f => request.Extra.TryGetValue(f, out var v) && v.ValueKind is not (JsonValueKind.Null or JsonValueKind.False)));

    private async Task<UpstreamResult<UpstreamCompletion>> CompleteStreamingAsync(Guid requestId, ChatCompletionRequest request, ModelRoute route,
        Action<ModelRoute, UpstreamStream?>? reading, CancellationToken ct)
    {
        var streamed = request.AsStreamed();
        var assembler = new CompletionAssembler();
        // A model's own ttft_timeout_ms applies as to streams; without one, the longer non-streaming default: reasoning models that
        // think silently were given the whole timeout_ms before, and a client that did not stream did not ask for a fast first token.
        var opened = await OpenPrimedAsync(requestId, streamed, route,
            TimeSpan.FromMilliseconds(route.TtftTimeoutMs ?? failoverOptions.Value.DefaultNonStreamingTtftTimeoutMs), ct, assembler);
        if (opened.Failure is { Kind: UpstreamFailureKind.CallerError, UpstreamStatus: 400 } refusal
            && (refusal.CallerError?.Param == "stream" || StreamWord().IsMatch(refusal.CallerError?.Message ?? "")))
        {
            // Some models and APIs take a request only unstreamed (OpenAI: "Unsupported value: 'stream' does not support true with
            // this model"): asked so at once, and from now on if that was the reason.
            var plain = await Provider(route).CompleteAsync(new UpstreamCall(requestId, request, route), ct);
            if (plain.Failure is null // only an answer proves the stream was the refusal's reason
                && _streamRefused.TryAdd(ProviderHealth.ModelKey(route.Provider.Name, route.UpstreamModel), 0))
                Log.StreamRefused(log, route.Provider.Name, route.UpstreamModel, refusal.CallerError?.Message ?? refusal.Detail);
            return plain;
        }
        if (opened.Failure is { } failure) return failure;
        await using var primed = opened.Value!;
        var stream = primed.Inner;
        reading?.Invoke(route, stream); // left set if the client goes (an exception): what was read is what it is charged
        try
        {
            await foreach (var chunk in primed.ReadChunksAsync(ct))
                if (!stream.Assembles) assembler.Add(chunk.Json);
        }
        catch (UpstreamStreamException broken)
        {
            reading?.Invoke(route, null);
            // Broken half-way: the provider billed the prompt and what it produced (estimated when it reported nothing).
            var usage = broken.Failure.Usage ?? stream.Usage
                ?? new TokenUsage(tokens.CountPrompt(request.Messages!), tokens.Count(stream.Text.ToString()), 0) { Estimated = true };
            return broken.Failure with { Usage = usage };
        }
        reading?.Invoke(route, null);
        return new UpstreamCompletion(assembler.Build(stream.ServedModel), stream.Usage, stream.ServedModel, stream.Usage is null ? stream.Text.ToString() : "");
    }

    /// <summary>
    /// A stream over the model's candidate chain, each candidate held back until its first token
    /// (within the model's <c>ttft_timeout_ms</c>, else Gateway:Failover:DefaultTtftTimeoutMs).
    /// </summary>
    public Task<FailoverResult<PrimedStream>> OpenStreamAsync(Guid requestId, ChatCompletionRequest request, IReadOnlyList<ModelRoute> chain,
        Func<ModelRoute, TokenUsage, bool>? mayCallAgain, CancellationToken ct) =>
        failover.RunAsync(GatewayTelemetry.Chat, chain, (route, token) => OpenPrimedAsync(requestId, request, route, token), ct, mayCallAgain);

    private Task<UpstreamResult<PrimedStream>> OpenPrimedAsync(Guid requestId, ChatCompletionRequest request, ModelRoute route, CancellationToken ct) =>
        OpenPrimedAsync(requestId, request, route, TimeSpan.FromMilliseconds(route.TtftTimeoutMs ?? failoverOptions.Value.DefaultTtftTimeoutMs), ct);

    private Task<UpstreamResult<PrimedStream>> OpenPrimedAsync(Guid requestId, ChatCompletionRequest request, ModelRoute route, TimeSpan firstToken,
        CancellationToken ct, CompletionAssembler? assembler = null) =>
        Untranslatable(request, route) is { } refused
            ? Task.FromResult<UpstreamResult<PrimedStream>>(refused)
            : PrimedStream.OpenAsync(open => Provider(route).OpenStreamAsync(new UpstreamCall(requestId, request, route) { Assembler = assembler }, open),
                route.Provider.Name, firstToken, ct);

    private IChatProvider Provider(ModelRoute route) => _providers[route.Provider.Protocol];

    /// <summary>
    /// A candidate that does not take the client's own body cannot take what the translation left out (see
    /// <see cref="NativeRequest.Untranslated"/>): its 400 names it. Null when the candidate can take the request.
    /// </summary>
    private static UpstreamFailure? Untranslatable(ChatCompletionRequest request, ModelRoute route) =>
        request.Native is { Untranslated.Count: > 0 } native && !native.PassesThroughTo(route.Provider)
            ? new RequestMappingException(Errors.GatewayError.BadRequest(
                $"The model '{route.Alias}' is served through {Through(route.Provider)}, which cannot take {string.Join(", ", native.Untranslated)}. "
                + $"Route the request to {Serving(native.Protocol)}, or leave those out.", "model", "untranslatable_request")).ToFailure(route.Provider.Name)
            : null;

    private static string Through(Catalog.ProviderInfo provider) =>
        provider.Protocol == "openai" ? "a chat completions API" : $"the {provider.Protocol} API";

    private static string Serving(string protocol) =>
        protocol == NativeRequest.OpenAIResponses ? "a model of a provider that serves the Responses API (OpenAI)" : "an Anthropic model";

    /// <summary>What a continuation asks of a candidate that cannot continue the partial answer natively.</summary>
    public const string ContinuePrompt = "Continue exactly where your previous message stopped. Do not repeat any of it and do not comment on the interruption.";

    // Provider/model pairs that refused a prefilled continuation (400) once: asked with the instruction from then on.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _prefillRefused = new(StringComparer.Ordinal);

    /// <summary>
    /// Continues a broken stream on the remaining candidates, each asked in the form its protocol continues natively: Anthropic gets
    /// the partial answer as a prefilled last assistant turn (trailing whitespace trimmed, as the API requires), an
    /// OpenAI-compatible API whose provider sets <c>prefix_completion</c> gets it as an assistant message with <c>"prefix": true</c>.
    /// Other protocols, JSON mode, and models that once refused a prefill with a 400 (newer Claude models do) get the partial
    /// answer followed by <see cref="ContinuePrompt"/>. A refused prefill is retried on the same candidate with the instruction.
    /// The client's output limit covers the whole answer, the part already sent included.
    /// </summary>
    public Task<FailoverResult<PrimedStream>> ContinueStreamAsync(Guid requestId, ChatCompletionRequest original, string partialAnswer,
        IReadOnlyList<ModelRoute> chain, Func<ModelRoute, TokenUsage, bool>? mayCallAgain, CancellationToken ct)
    {
        var copy = JsonSerializer.Deserialize(JsonSerializer.SerializeToUtf8Bytes(original, GatewayJsonContext.Wire.ChatCompletionRequest),
            GatewayJsonContext.Wire.ChatCompletionRequest)!;
        var sent = tokens.Count(partialAnswer);
        if (copy.MaxCompletionTokens is { } maxCompletion) copy.MaxCompletionTokens = Math.Max(1, maxCompletion - sent);
        if (copy.MaxTokens is { } max) copy.MaxTokens = Math.Max(1, max - sent);
        // A partial answer of whitespace only said nothing: the question is asked again (Anthropic refuses a turn of whitespace only,
        // as a prefill or before an instruction), and the splice drops the whitespace if the answer starts with it again.
        if (string.IsNullOrWhiteSpace(partialAnswer))
            return failover.RunAsync(GatewayTelemetry.Chat, chain, (route, token) => OpenPrimedAsync(requestId, copy, route, token), ct, mayCallAgain);
        var instructed = copy.WithMessages([.. copy.Messages!, Message("assistant", partialAnswer), Message("user", ContinuePrompt)]);
        return failover.RunAsync(GatewayTelemetry.Chat, chain, async (route, token) =>
        {
            if (Prefilled(route, copy, partialAnswer) is not { } native) return await OpenPrimedAsync(requestId, instructed, route, token);
            var opened = await OpenPrimedAsync(requestId, native, route, token);
            if (opened.Failure is not { Kind: UpstreamFailureKind.CallerError, UpstreamStatus: 400 } refusal) return opened;
            var retried = await OpenPrimedAsync(requestId, instructed, route, token);
            // Only a refusal the instruction got past was the prefill's: remembered, so later continuations skip the refused call.
            if (retried.Failure is not { Kind: UpstreamFailureKind.CallerError }
                && _prefillRefused.TryAdd(ProviderHealth.ModelKey(route.Provider.Name, route.UpstreamModel), 0))
                Log.PrefillRefused(log, route.Provider.Name, route.UpstreamModel, refusal.CallerError?.Message ?? refusal.Detail);
            return retried;
        }, ct, mayCallAgain);
    }

    // The continuation as this candidate's protocol continues it natively, or null when it cannot.
    private ChatCompletionRequest? Prefilled(ModelRoute route, ChatCompletionRequest copy, string partialAnswer)
    {
        if (_prefillRefused.ContainsKey(ProviderHealth.ModelKey(route.Provider.Name, route.UpstreamModel))) return null;
        switch (route.Provider.Protocol)
        {
            // JSON mode is a forced tool for Anthropic: its answer is the tool's input, not text a prefill could start.
            case "anthropic" when IsPlainText(copy.ResponseFormat) && partialAnswer.TrimEnd() is { Length: > 0 } trimmed:
                return copy.WithMessages([.. copy.Messages!, Message("assistant", trimmed)]);
            case "openai" when route.Provider.Settings.PrefixCompletion == true:
                var prefix = Message("assistant", partialAnswer);
                prefix.Extra = new() { ["prefix"] = True };
                return copy.WithMessages([.. copy.Messages!, prefix]);
            default:
                return null;
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"\bstream", System.Text.RegularExpressions.RegexOptions.IgnoreCase)]
    private static partial System.Text.RegularExpressions.Regex StreamWord();

    private static readonly JsonElement True = JsonDocument.Parse("true").RootElement.Clone();

    private static partial class Log
    {
        [LoggerMessage(EventId = 1703, Level = LogLevel.Information,
            Message = "Provider {Provider} model {Model} refused a prefilled continuation ({Detail}); its continuations use an instruction from now on")]
        public static partial void PrefillRefused(ILogger logger, string provider, string model, string detail);

        [LoggerMessage(EventId = 1704, Level = LogLevel.Information,
            Message = "Provider {Provider} model {Model} refused a streamed call that it took unstreamed ({Detail}); its non-streaming requests are sent unstreamed from now on")]
        public static partial void StreamRefused(ILogger logger, string provider, string model, string detail);
    }

    // No response_format, or {"type":"text"}: the answer is text a prefill can start.
    private static bool IsPlainText(JsonElement? format) =>
        format is not { ValueKind: JsonValueKind.Object } f || f.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "text";

    private static ChatMessage Message(string role, string text) =>
        new() { Role = role, Content = JsonSerializer.SerializeToElement(text, GatewayJsonContext.Wire.String) };
}
