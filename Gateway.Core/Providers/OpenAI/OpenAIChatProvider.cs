using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Catalog;
using Gateway.Core.Wire;
using Microsoft.Extensions.Options;

namespace Gateway.Core.Providers.OpenAI;

/// <summary>
/// OpenAI and every OpenAI-compatible API (DeepSeek, Mistral, Qwen/DashScope, Groq, vLLM, Ollama…):
/// the client's body is passed on with only <c>model</c> and <c>stream_options</c> changed, and the
/// answer is passed back as the provider sent it.
/// </summary>
public sealed class OpenAIChatProvider(IHttpClientFactory clients, IOptions<UpstreamOptions> options, TimeProvider time) : IChatProvider, IEmbeddingProvider
{
    public const string HttpClientName = "openai";

    public string Protocol => "openai";

    public async Task<UpstreamResult<UpstreamCompletion>> CompleteAsync(UpstreamCall call, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(options.Value.TimeoutFor(call.Route));
        var sent = await SendAsync(call, deadline.Token, ct);
        if (sent.Failure is { } failure) return failure;
        using var response = sent.Value!;
        var read = await UpstreamHttp.ReadAsync(response, call.Route.Provider.Name, deadline.Token, ct);
        if (read.Failure is { } broken) return broken;
        var body = read.Value!;
        try
        {
            if (Responses(call) is not null) return OpenAIResponsesApi.Answer(body, "resp_" + call.RequestId.ToString("N"));
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            var usage = root.TryGetProperty("usage", out var u) ? TokenUsage.FromOpenAI(u) : null;
            var model = root.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
            return new UpstreamCompletion(body, usage, model, usage is null ? AnswerText(root) : "");
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return new UpstreamFailure(UpstreamFailureKind.Protocol, call.Route.Provider.Name, "its answer was not valid JSON");
        }
    }

    public Task<UpstreamResult<UpstreamStream>> OpenStreamAsync(UpstreamCall call, CancellationToken ct) =>
        UpstreamStream.OpenAsync(options.Value.TimeoutFor(call.Route), deadline => SendAsync(call, deadline, ct),
            (response, deadline) => Responses(call) is not null
                ? new OpenAIResponsesStream(call.Route.Provider.Name, new ChunkWriter("chatcmpl-" + call.RequestId.ToString("N"),
                    time.GetUtcNow().ToUnixTimeSeconds(), call.Route.UpstreamModel), response, deadline, ct)
                : OpenAIJsonAnswer.IsJson(response)
                    ? new OpenAIJsonAnswer(call.Route.Provider.Name, response, deadline, ct)
                    : new OpenAIStream(call.Route.Provider.Name, response, deadline, ct, call.Assembler), ct);

    /// <summary>The client's Responses request, when it came through the Responses door to a provider that serves that API.</summary>
    private static NativeRequest? Responses(UpstreamCall call) =>
        call.Request.Native is { Protocol: NativeRequest.OpenAIResponses } native && native.PassesThroughTo(call.Route.Provider) ? native : null;

    private Task<UpstreamResult<HttpResponseMessage>> SendAsync(UpstreamCall call, CancellationToken deadline, CancellationToken clientAborted) =>
        Responses(call) is { } responses
            ? PostAsync(call.Route.Provider, "responses", () => OpenAIResponsesApi.Body(call, responses), deadline, clientAborted)
            : PostAsync(call.Route.Provider, "chat/completions", () => UpstreamBody(call), deadline, clientAborted);

    private async Task<UpstreamResult<HttpResponseMessage>> PostAsync(ProviderInfo provider, string path, Func<byte[]> body,
        CancellationToken deadline, CancellationToken clientAborted)
    {
        if (provider.SecretProblem is not null) return UpstreamFailure.SecretUnavailable(provider.Name);
        using var request = Request(HttpMethod.Post, provider, path);
        request.Content = new ByteArrayContent(body());
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return await UpstreamHttp.SendAsync(clients.CreateClient(HttpClientName), request, provider.Name,
            (status, error) => UpstreamFailure.FromStatus(provider.Name, status, error), deadline, clientAborted);
    }

    /// <summary>A request to <c>{base}/{path}</c> with the provider's key as a bearer token.</summary>
    private static HttpRequestMessage Request(HttpMethod method, ProviderInfo provider, string path)
    {
        var request = new HttpRequestMessage(method, new Uri(provider.BaseUrl, path));
        if (provider.Secret is { } secret)
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", secret);
        return request;
    }

    /// <summary><c>GET {base}/models</c>: <c>{"object":"list","data":[{"id",…}]}</c> (https://platform.openai.com/docs/api-reference/models/list).</summary>
    public async Task<UpstreamResult<ModelListing>> ListModelsAsync(ProviderInfo provider, TimeSpan timeout, CancellationToken ct)
    {
        if (provider.SecretProblem is not null) return UpstreamFailure.SecretUnavailable(provider.Name);
        using var request = Request(HttpMethod.Get, provider, "models");
        return await UpstreamHttp.ListModelsAsync(clients.CreateClient(HttpClientName), request, provider.Name,
            root => UpstreamHttp.Ids(root, "data", "id"), timeout, ct);
    }

    /// <summary><c>POST {base}/embeddings</c>: the body passed on with the upstream model, the answer passed back.</summary>
    public async Task<UpstreamResult<UpstreamCompletion>> EmbedAsync(EmbeddingCall call, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(options.Value.TimeoutFor(call.Route));
        var provider = call.Route.Provider;
        var sent = await PostAsync(provider, "embeddings", () =>
        {
            var body = JsonSerializer.SerializeToUtf8Bytes(call.Request.ForUpstream(call.Route.UpstreamModel), GatewayJsonContext.Wire.EmbeddingRequest);
            return provider.Settings.DropParams is { Count: > 0 } ? ApplyQuirks(body, provider.Settings) : body;
        }, deadline.Token, ct);
        if (sent.Failure is { } failure) return failure;
        using var response = sent.Value!;
        var read = await UpstreamHttp.ReadAsync(response, provider.Name, deadline.Token, ct);
        if (read.Failure is { } broken) return broken;
        try
        {
            using var doc = JsonDocument.Parse(read.Value!);
            var root = doc.RootElement;
            var usage = root.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object
                ? new TokenUsage(TokenUsage.Int(u, "prompt_tokens"), 0, 0)
                : (TokenUsage?)null;
            return new UpstreamCompletion(read.Value!, usage, OpenAIRequestView.Str(root, "model"));
        }
        catch (JsonException)
        {
            return new UpstreamFailure(UpstreamFailureKind.Protocol, provider.Name, "its answer was not valid JSON");
        }
    }

    private static string AnswerText(JsonElement root)
    {
        if (!root.TryGetProperty("choices", out var choices) || choices.ValueKind != JsonValueKind.Array) return "";
        var text = new System.Text.StringBuilder();
        foreach (var choice in choices.EnumerateArray())
        {
            if (choice.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.Object)
            {
                if (message.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
                    text.Append(content.GetString());
                if (message.TryGetProperty("tool_calls", out var tools) && tools.ValueKind == JsonValueKind.Array)
                    text.Append(tools.GetRawText());
            }
        }
        return text.ToString();
    }

    /// <summary>
    /// The client's body with the upstream model and, for streams, usage asked for; then the provider's
    /// quirks from its settings (renamed or dropped fields). Without quirks no JSON tree is built.
    /// </summary>
    private static byte[] UpstreamBody(UpstreamCall call)
    {
        var request = call.Request;
        var settings = call.Route.Provider.Settings;
        var streamOptions = !request.IsStreaming ? request.StreamOptions
            : settings.SendsStreamUsage ? new StreamOptions { IncludeUsage = true, Extra = request.StreamOptions?.Extra } : null;
        var body = JsonSerializer.SerializeToUtf8Bytes(request.ForUpstream(call.Route.UpstreamModel, streamOptions), GatewayJsonContext.Wire.ChatCompletionRequest);
        return settings.ChangesOpenAIBody ? ApplyQuirks(body, settings) : body;
    }

    private static byte[] ApplyQuirks(byte[] body, ProviderSettings settings)
    {
        var json = JsonNode.Parse(body)!.AsObject();
        if (settings.MaxTokensField is { } wanted)
        {
            var other = wanted == "max_tokens" ? "max_completion_tokens" : "max_tokens";
            if (json.Remove(other, out var limit) && !json.ContainsKey(wanted)) json[wanted] = limit;
        }
        foreach (var name in settings.DropParams ?? []) json.Remove(name);
        return JsonSerializer.SerializeToUtf8Bytes(json, GatewayJsonContext.Wire.JsonObject);
    }

    /// <summary>How the typed client talks to upstreams (see README: no blind retries, no attempt timeout).</summary>
    public static SocketsHttpHandler CreateHandler() => new()
    {
        AllowAutoRedirect = false,
        UseCookies = false,
        UseProxy = false,
        AutomaticDecompression = DecompressionMethods.None,
        ConnectTimeout = TimeSpan.FromSeconds(15),
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        EnableMultipleHttp2Connections = true,
    };
}
