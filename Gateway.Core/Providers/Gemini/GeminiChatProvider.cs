using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Errors;
using Gateway.Core.Providers.OpenAI;
using Gateway.Core.Tokens;
using Gateway.Core.Wire;
using Microsoft.Extensions.Options;

namespace Gateway.Core.Providers.Gemini;

/// <summary>
/// Google Gemini (Generative Language API): <c>models/{model}:generateContent</c> and
/// <c>:streamGenerateContent?alt=sse</c> with <c>x-goog-api-key</c>; base URL
/// <c>https://generativelanguage.googleapis.com/v1beta</c>. Answers are translated to OpenAI's format.
/// </summary>
public sealed class GeminiChatProvider(IHttpClientFactory clients, IOptions<UpstreamOptions> options, TimeProvider time, TokenCounter tokens)
    : IChatProvider, IEmbeddingProvider
{
    public string Protocol => "gemini";

    public async Task<UpstreamResult<UpstreamCompletion>> CompleteAsync(UpstreamCall call, CancellationToken ct)
    {
        var provider = call.Route.Provider.Name;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(options.Value.TimeoutFor(call.Route));
        var sent = await SendAsync(call, "generateContent", deadline.Token, ct);
        if (sent.Failure is { } failure) return failure;
        using var response = sent.Value!;
        var read = await UpstreamHttp.ReadAsync(response, provider, deadline.Token, ct);
        if (read.Failure is { } broken) return broken;
        try
        {
            using var doc = JsonDocument.Parse(read.Value!);
            return Translate(call, doc.RootElement, Created());
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or KeyNotFoundException)
        {
            return new UpstreamFailure(UpstreamFailureKind.Protocol, provider, "its answer was not a GenerateContentResponse");
        }
    }

    public Task<UpstreamResult<UpstreamStream>> OpenStreamAsync(UpstreamCall call, CancellationToken ct)
    {
        if (call.Request.N is > 1)
        {
            return Task.FromResult<UpstreamResult<UpstreamStream>>(new RequestMappingException(GatewayError.BadRequest(
                "Streaming more than one choice (n > 1) is not supported for Gemini models.", "n", "invalid_value")).ToFailure(call.Route.Provider.Name));
        }
        return UpstreamStream.OpenAsync(options.Value.TimeoutFor(call.Route), deadline => SendAsync(call, "streamGenerateContent?alt=sse", deadline, ct),
            (response, deadline) => new GeminiStream(call, new ChunkWriter(CompletionId(call), Created(), call.Route.UpstreamModel), response, deadline, ct), ct);
    }

    /// <summary>
    /// <c>models/{model}:batchEmbedContents</c>, one request per input, answered as OpenAI's list. Gemini
    /// reports no usage for embeddings, so prompt tokens are counted locally (the row says estimated).
    /// </summary>
    public async Task<UpstreamResult<UpstreamCompletion>> EmbedAsync(EmbeddingCall call, CancellationToken ct)
    {
        var provider = call.Route.Provider;
        if (call.Request.Texts() is not { } texts)
        {
            return new RequestMappingException(GatewayError.BadRequest("Token-id inputs are not supported for Gemini embeddings; send text.", "input", "invalid_value"))
                .ToFailure(provider.Name);
        }
        var model = ModelName(call.Route.UpstreamModel);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(options.Value.TimeoutFor(call.Route));
        var vectors = new List<float[]>(texts.Count);
        // batchEmbedContents takes at most 100 requests per call.
        foreach (var batch in texts.Chunk(100))
        {
            var body = new JsonObject
            {
                ["requests"] = new JsonArray([.. batch.Select(text =>
                {
                    var one = new JsonObject { ["model"] = "models/" + model, ["content"] = new JsonObject { ["parts"] = new JsonArray(new JsonObject { ["text"] = text }) } };
                    if (call.Request.Dimensions is { } dimensions) one["outputDimensionality"] = dimensions;
                    return (JsonNode)one;
                })]),
            };
            var sent = await PostAsync(provider, model, "batchEmbedContents", body, deadline.Token, ct);
            if (sent.Failure is { } failure) return failure;
            using var response = sent.Value!;
            var read = await UpstreamHttp.ReadAsync(response, provider.Name, deadline.Token, ct);
            if (read.Failure is { } broken) return broken;
            try
            {
                using var doc = JsonDocument.Parse(read.Value!);
                var answered = doc.RootElement.GetProperty("embeddings").EnumerateArray()
                    .Select(e => e.GetProperty("values").EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToList();
                if (answered.Count != batch.Length) return new UpstreamFailure(UpstreamFailureKind.Protocol, provider.Name, "it answered a different number of embeddings");
                vectors.AddRange(answered);
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                return new UpstreamFailure(UpstreamFailureKind.Protocol, provider.Name, "its answer was not a BatchEmbedContentsResponse");
            }
        }
        var promptTokens = texts.Sum(tokens.Count);
        return new UpstreamCompletion(EmbeddingLists.Build(call.Route.UpstreamModel, vectors, promptTokens, call.Request.EncodingFormat),
            new TokenUsage(promptTokens, 0, 0), call.Route.UpstreamModel, UsageEstimated: true);
    }

    private static string ModelName(string upstreamModel) =>
        upstreamModel.StartsWith("models/", StringComparison.Ordinal) ? upstreamModel[7..] : upstreamModel;

    private async Task<UpstreamResult<HttpResponseMessage>> SendAsync(UpstreamCall call, string method, CancellationToken deadline, CancellationToken clientAborted)
    {
        var provider = call.Route.Provider;
        JsonObject body;
        try
        {
            body = GeminiRequestMapper.Map(call);
        }
        catch (RequestMappingException ex)
        {
            return ex.ToFailure(provider.Name);
        }
        return await PostAsync(provider, ModelName(call.Route.UpstreamModel), method, body, deadline, clientAborted);
    }

    private async Task<UpstreamResult<HttpResponseMessage>> PostAsync(Catalog.ProviderInfo provider, string model, string method, JsonObject body,
        CancellationToken deadline, CancellationToken clientAborted)
    {
        if (provider.SecretProblem is not null) return UpstreamFailure.SecretUnavailable(provider.Name);
        using var request = Request(HttpMethod.Post, provider, $"models/{Uri.EscapeDataString(model)}:{method}");
        request.Content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(body, GatewayJsonContext.Wire.JsonObject));
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return await UpstreamHttp.SendAsync(clients.CreateClient(OpenAIChatProvider.HttpClientName), request, provider.Name,
            (status, error) => Classify(provider.Name, status, error), deadline, clientAborted);
    }

    /// <summary>A request to <c>{base}/{path}</c> with the provider's key in <c>x-goog-api-key</c> (never in the URL, where logs would keep it).</summary>
    private static HttpRequestMessage Request(HttpMethod method, Catalog.ProviderInfo provider, string path)
    {
        var request = new HttpRequestMessage(method, new Uri(provider.BaseUrl, path));
        if (provider.Secret is { } secret) request.Headers.Add("x-goog-api-key", secret);
        return request;
    }

    /// <summary>
    /// <c>GET {base}/models</c>: <c>{"models":[{"name":"models/gemini-2.5-flash",…}],"nextPageToken"}</c>
    /// (https://ai.google.dev/api/models#method:-models.list); ids without the <c>models/</c> prefix.
    /// </summary>
    public async Task<UpstreamResult<ModelListing>> ListModelsAsync(Catalog.ProviderInfo provider, TimeSpan timeout, CancellationToken ct)
    {
        if (provider.SecretProblem is not null) return UpstreamFailure.SecretUnavailable(provider.Name);
        using var request = Request(HttpMethod.Get, provider, "models");
        return await UpstreamHttp.ListModelsAsync(clients.CreateClient(OpenAIChatProvider.HttpClientName), request, provider.Name,
            root => UpstreamHttp.Ids(root, "models", "name")?.Select(ModelName), timeout, ct);
    }

    // Gemini answers a bad API key with 400 INVALID_ARGUMENT (reason API_KEY_INVALID): that is the
    // gateway's credential, not the caller's request.
    private static UpstreamFailure Classify(string provider, int status, byte[] body) => status switch
    {
        400 when body.AsSpan().IndexOf("API_KEY_INVALID"u8) >= 0 =>
            new UpstreamFailure(UpstreamFailureKind.AuthRejected, provider, "it rejected the gateway's credentials (API_KEY_INVALID)", status),
        // Billing not enabled, or the service not offered in the gateway's region: set-up, not the caller's request.
        400 when body.AsSpan().IndexOf("FAILED_PRECONDITION"u8) >= 0 =>
            new UpstreamFailure(UpstreamFailureKind.Misconfigured, provider, "its account cannot serve the call (FAILED_PRECONDITION)", status),
        _ => UpstreamFailure.FromStatus(provider, status, body),
    };

    /// <summary>A GenerateContentResponse → an OpenAI chat.completion (internal for the golden-file tests).</summary>
    internal static UpstreamResult<UpstreamCompletion> Translate(UpstreamCall call, JsonElement root, long created)
    {
        var provider = call.Route.Provider.Name;
        var choices = new List<ChatChoice>();
        var text = new System.Text.StringBuilder();
        var toolIndex = 0;
        if (root.TryGetProperty("candidates", out var candidates) && candidates.ValueKind == JsonValueKind.Array)
        {
            foreach (var candidate in candidates.EnumerateArray())
            {
                var (content, calls) = GeminiResponseMapper.Parts(candidate);
                var reason = OpenAIRequestView.Str(candidate, "finishReason");
                var finish = GeminiResponseMapper.FinishReason(reason, calls.Count > 0);
                if (finish is null)
                {
                    return new UpstreamFailure(UpstreamFailureKind.Protocol, provider, $"the model produced an unusable function call ({reason})",
                        Usage: root.TryGetProperty("usageMetadata", out var billed) ? GeminiResponseMapper.Usage(billed).Usage : null);
                }
                var toolCalls = calls.Count == 0 ? null : calls.Select(c =>
                    new ToolCall(GeminiToolCallIds.Encode(call.RequestId, toolIndex++, c.Signature), "function", new FunctionCall(c.Name, c.Arguments))).ToList();
                text.Append(content);
                choices.Add(new ChatChoice(
                    candidate.TryGetProperty("index", out var i) && i.TryGetInt32(out var index) ? index : choices.Count,
                    new AssistantMessage("assistant", content.Length == 0 && toolCalls is not null ? null : content, null, toolCalls),
                    null, finish));
            }
        }
        if (choices.Count == 0)
        {
            // A blocked prompt is a 200 with promptFeedback.blockReason and no candidates.
            if (!root.TryGetProperty("promptFeedback", out var feedback) || OpenAIRequestView.Str(feedback, "blockReason") is null)
                return new UpstreamFailure(UpstreamFailureKind.Protocol, provider, "it answered without candidates");
            choices.Add(new ChatChoice(0, new AssistantMessage("assistant", null, null), null, "content_filter"));
        }

        var (usage, wireUsage) = root.TryGetProperty("usageMetadata", out var metadata)
            ? GeminiResponseMapper.Usage(metadata)
            : (default(TokenUsage?), new ChatUsage(0, 0, 0));
        var served = OpenAIRequestView.Str(root, "modelVersion") ?? call.Route.UpstreamModel;
        var completion = new ChatCompletion(CompletionId(call), "chat.completion", created, served, choices, wireUsage);
        return new UpstreamCompletion(JsonSerializer.SerializeToUtf8Bytes(completion, GatewayJsonContext.Wire.ChatCompletion),
            metadata.ValueKind == JsonValueKind.Object ? usage : null, served, text.ToString());
    }

    private static string CompletionId(UpstreamCall call) => "chatcmpl-" + call.RequestId.ToString("N", CultureInfo.InvariantCulture);

    private long Created() => time.GetUtcNow().ToUnixTimeSeconds();
}
