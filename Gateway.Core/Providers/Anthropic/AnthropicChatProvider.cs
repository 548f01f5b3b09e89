using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Catalog;
using Gateway.Core.Providers.OpenAI;
using Gateway.Core.Wire;
using Microsoft.Extensions.Options;

namespace Gateway.Core.Providers.Anthropic;

/// <summary>
/// Anthropic Messages API: <c>POST {base}/messages</c> with <c>x-api-key</c> and <c>anthropic-version</c>
/// (provider setting <c>anthropic_version</c>, default 2023-06-01); base URL <c>https://api.anthropic.com/v1</c>.
/// </summary>
public sealed class AnthropicChatProvider(IHttpClientFactory clients, IOptions<UpstreamOptions> options, TimeProvider time) : IChatProvider
{
    public string Protocol => "anthropic";

    public async Task<UpstreamResult<UpstreamCompletion>> CompleteAsync(UpstreamCall call, CancellationToken ct)
    {
        var provider = call.Route.Provider.Name;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(options.Value.TimeoutFor(call.Route));
        var sent = await SendAsync(call, deadline.Token, ct);
        if (sent.Failure is { } failure) return failure;
        var (response, jsonTool) = sent.Value!;
        using (response)
        {
            var read = await UpstreamHttp.ReadAsync(response, provider, deadline.Token, ct);
            if (read.Failure is { } broken) return broken;
            try
            {
                using var doc = JsonDocument.Parse(read.Value!);
                var translated = Translate(call, doc.RootElement, jsonTool, Created());
                // Passed through: the client gets the Message as Anthropic wrote it; the translation is what the gateway meters.
                return IsNative(call) && translated.Value is { } completion ? completion with { Native = read.Value! } : translated;
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException or KeyNotFoundException)
            {
                return new UpstreamFailure(UpstreamFailureKind.Protocol, provider, "its answer was not a Message");
            }
        }
    }

    public Task<UpstreamResult<UpstreamStream>> OpenStreamAsync(UpstreamCall call, CancellationToken ct) =>
        UpstreamStream.OpenAsync(options.Value.TimeoutFor(call.Route), deadline => SendAsync(call, deadline, ct),
            (sent, deadline) => new AnthropicStream(call.Route.Provider.Name, new ChunkWriter(CompletionId(call), Created(), call.Route.UpstreamModel),
                sent.JsonTool, sent.Response, deadline, ct, IsNative(call)), ct);

    /// <summary>The request came through the Anthropic door: it is passed through as the client wrote it.</summary>
    private static bool IsNative(UpstreamCall call) => call.Request.Native is { Protocol: NativeRequest.Anthropic };

    private sealed record Sent(HttpResponseMessage Response, string? JsonTool);

    private async Task<UpstreamResult<Sent>> SendAsync(UpstreamCall call, CancellationToken deadline, CancellationToken clientAborted)
    {
        var provider = call.Route.Provider;
        if (provider.SecretProblem is not null) return UpstreamFailure.SecretUnavailable(provider.Name);
        JsonObject body;
        string? jsonTool = null;
        if (call.Request.Native is { Protocol: NativeRequest.Anthropic } native)
        {
            // The client's own request, only the model replaced and streaming as asked (a non-streaming request may be read streamed).
            body = native.Body.DeepClone().AsObject();
            body["model"] = call.Route.UpstreamModel;
            if (call.Request.IsStreaming) body["stream"] = true;
            else body.Remove("stream");
        }
        else
        {
            try
            {
                (body, jsonTool) = AnthropicRequestMapper.Map(call);
            }
            catch (RequestMappingException ex)
            {
                return ex.ToFailure(provider.Name);
            }
        }

        using var request = Request(HttpMethod.Post, provider, "messages");
        if (call.Request.Native is { Beta: { Length: > 0 } beta }) request.Headers.TryAddWithoutValidation("anthropic-beta", beta);
        request.Content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(body, GatewayJsonContext.Wire.JsonObject));
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var sent = await UpstreamHttp.SendAsync(clients.CreateClient(OpenAIChatProvider.HttpClientName), request, provider.Name,
            (status, error) => UpstreamFailure.FromStatus(provider.Name, status, error), deadline, clientAborted);
        return sent.Failure is { } failure ? failure : new Sent(sent.Value!, jsonTool);
    }

    /// <summary>A request to <c>{base}/{path}</c> with the provider's <c>x-api-key</c> and <c>anthropic-version</c>.</summary>
    private static HttpRequestMessage Request(HttpMethod method, Catalog.ProviderInfo provider, string path)
    {
        var request = new HttpRequestMessage(method, new Uri(provider.BaseUrl, path));
        if (provider.Secret is { } secret) request.Headers.Add("x-api-key", secret);
        request.Headers.Add("anthropic-version", provider.Settings.AnthropicVersion ?? AnthropicRequestMapper.DefaultVersion);
        return request;
    }

    /// <summary>
    /// <c>POST {base}/messages/count_tokens</c> (https://docs.anthropic.com/en/api/messages-count-tokens): the provider's own count
    /// of a Messages request's input, the client's request sent as it wrote it (only the model replaced).
    /// </summary>
    public async Task<(int? Count, UpstreamFailure? Failure)> CountTokensAsync(ModelRoute route, NativeRequest native, CancellationToken ct)
    {
        var provider = route.Provider;
        if (provider.SecretProblem is not null) return (null, UpstreamFailure.SecretUnavailable(provider.Name));
        var body = native.Body.DeepClone().AsObject();
        body["model"] = route.UpstreamModel;
        body.Remove("max_tokens");
        body.Remove("stream");
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(options.Value.TimeoutFor(route));
        using var request = Request(HttpMethod.Post, provider, "messages/count_tokens");
        if (native.Beta is { Length: > 0 } beta) request.Headers.TryAddWithoutValidation("anthropic-beta", beta);
        request.Content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(body, GatewayJsonContext.Wire.JsonObject));
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var sent = await UpstreamHttp.SendAsync(clients.CreateClient(OpenAIChatProvider.HttpClientName), request, provider.Name,
            (status, error) => UpstreamFailure.FromStatus(provider.Name, status, error), deadline.Token, ct);
        if (sent.Failure is { } failure) return (null, failure);
        using var response = sent.Value!;
        var read = await UpstreamHttp.ReadAsync(response, provider.Name, deadline.Token, ct);
        if (read.Failure is { } broken) return (null, broken);
        try
        {
            using var doc = JsonDocument.Parse(read.Value!);
            return (doc.RootElement.GetProperty("input_tokens").GetInt32(), null);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or KeyNotFoundException or FormatException)
        {
            return (null, new UpstreamFailure(UpstreamFailureKind.Protocol, provider.Name, "its answer was not a token count"));
        }
    }

    /// <summary>
    /// <c>GET {base}/models</c>: <c>{"data":[{"type":"model","id",…}],"has_more",…}</c>
    /// (https://docs.anthropic.com/en/api/models-list).
    /// </summary>
    public async Task<UpstreamResult<ModelListing>> ListModelsAsync(Catalog.ProviderInfo provider, TimeSpan timeout, CancellationToken ct)
    {
        if (provider.SecretProblem is not null) return UpstreamFailure.SecretUnavailable(provider.Name);
        using var request = Request(HttpMethod.Get, provider, "models");
        return await UpstreamHttp.ListModelsAsync(clients.CreateClient(OpenAIChatProvider.HttpClientName), request, provider.Name,
            root => UpstreamHttp.Ids(root, "data", "id"), timeout, ct);
    }

    /// <summary>A Message → an OpenAI chat.completion (internal for the golden-file tests).</summary>
    internal static UpstreamResult<UpstreamCompletion> Translate(UpstreamCall call, JsonElement root, string? jsonTool, long created)
    {
        var text = new System.Text.StringBuilder();
        var toolCalls = new List<ToolCall>();
        var stopReason = OpenAIRequestView.Str(root, "stop_reason");
        foreach (var block in root.GetProperty("content").EnumerateArray())
        {
            switch (OpenAIRequestView.Str(block, "type"))
            {
                case "text":
                    text.Append(OpenAIRequestView.Str(block, "text"));
                    break;
                case "tool_use" when jsonTool is not null && OpenAIRequestView.Str(block, "name") == jsonTool:
                    text.Append(OpenAIRequestView.Compact(block.GetProperty("input"))); // JSON mode: the forced tool's input is the answer
                    if (stopReason == "tool_use") stopReason = "end_turn"; // a cut-off answer stays "length"
                    break;
                case "tool_use":
                    toolCalls.Add(new ToolCall(OpenAIRequestView.Str(block, "id")!, "function",
                        new FunctionCall(OpenAIRequestView.Str(block, "name")!, OpenAIRequestView.Compact(block.GetProperty("input")))));
                    break;
            }
        }
        var (usage, wireUsage) = AnthropicResponseMapper.Usage(AnthropicResponseMapper.Counts(root.GetProperty("usage")));
        var served = OpenAIRequestView.Str(root, "model") ?? call.Route.UpstreamModel;
        var content = text.ToString();
        var completion = new ChatCompletion(CompletionId(call), "chat.completion", created, served,
            [new ChatChoice(0, new AssistantMessage("assistant", content.Length == 0 && toolCalls.Count > 0 ? null : content, null,
                toolCalls.Count > 0 ? toolCalls : null), null, AnthropicResponseMapper.FinishReason(stopReason))],
            wireUsage);
        return new UpstreamCompletion(JsonSerializer.SerializeToUtf8Bytes(completion, GatewayJsonContext.Wire.ChatCompletion), usage, served, content);
    }

    private static string CompletionId(UpstreamCall call) => "chatcmpl-" + call.RequestId.ToString("N", CultureInfo.InvariantCulture);

    private long Created() => time.GetUtcNow().ToUnixTimeSeconds();
}
