using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Wire;

namespace Gateway.Core.Providers.OpenAI;

/// <summary>
/// A streamed call that an OpenAI-compatible API answered with one <c>chat.completion</c> (<c>application/json</c>: it ignored
/// <c>"stream": true</c>), read as the stream it stands for: a chunk per choice whose delta is the whole message (tool calls
/// given their index; every field kept), then a usage chunk.
/// </summary>
internal sealed class OpenAIJsonAnswer(string provider, HttpResponseMessage response, CancellationTokenSource deadline, CancellationToken clientAborted)
    : UpstreamStream
{
    public static bool IsJson(HttpResponseMessage response) =>
        response.Content.Headers.ContentType?.MediaType is { } type && type.EndsWith("json", StringComparison.OrdinalIgnoreCase);

    public override async IAsyncEnumerable<StreamChunk> ReadChunksAsync([EnumeratorCancellation] CancellationToken ct)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, deadline.Token);
        var read = await UpstreamHttp.ReadAsync(response, provider, linked.Token, clientAborted);
        if (read.Failure is { } failure) throw new UpstreamStreamException(failure);
        JsonObject root;
        try
        {
            root = JsonNode.Parse(read.Value!) as JsonObject ?? throw new JsonException();
        }
        catch (JsonException)
        {
            throw new UpstreamStreamException(new UpstreamFailure(UpstreamFailureKind.Protocol, provider, "its answer was not valid JSON"));
        }
        if (root["model"] is JsonValue model && model.TryGetValue<string>(out var served)) ServedModel = served;
        var header = new JsonObject();
        foreach (var (name, value) in root)
            if (name is not ("choices" or "usage" or "object")) header[name] = value?.DeepClone();
        header["object"] = "chat.completion.chunk";
        var choices = root["choices"] as JsonArray ?? [];
        for (var i = 0; i < choices.Count; i++)
        {
            if (choices[i] is not JsonObject choice) continue;
            var delta = choice["message"] is JsonObject message ? (JsonObject)message.DeepClone() : [];
            var hasContent = false;
            var hasToolCall = false;
            if (delta["content"] is JsonValue content && content.TryGetValue<string>(out var text) && text.Length > 0)
            {
                Text.Append(text);
                hasContent = true;
            }
            if (delta["tool_calls"] is JsonArray { Count: > 0 } calls)
            {
                for (var c = 0; c < calls.Count; c++)
                    if (calls[c] is JsonObject call) call["index"] = c;
                Text.Append(calls.ToJsonString());
                hasContent = hasToolCall = true;
            }
            var chunk = (JsonObject)header.DeepClone();
            chunk["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = choice["index"]?.DeepClone() ?? i, ["delta"] = delta, ["logprobs"] = choice["logprobs"]?.DeepClone(),
                ["finish_reason"] = choice["finish_reason"]?.DeepClone(),
            });
            yield return new StreamChunk(JsonSerializer.SerializeToUtf8Bytes(chunk, GatewayJsonContext.Wire.JsonObject), false, hasContent, hasToolCall);
        }
        if (root["usage"] is JsonObject usage)
        {
            using (var doc = JsonDocument.Parse(usage.ToJsonString())) Usage = TokenUsage.FromOpenAI(doc.RootElement);
            var chunk = (JsonObject)header.DeepClone();
            chunk["choices"] = new JsonArray();
            chunk["usage"] = usage.DeepClone();
            yield return new StreamChunk(JsonSerializer.SerializeToUtf8Bytes(chunk, GatewayJsonContext.Wire.JsonObject), true, false);
        }
    }

    public override async ValueTask DisposeAsync()
    {
        response.Dispose();
        deadline.Dispose();
        await base.DisposeAsync();
    }
}
