using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Fixtures;

/// <summary>
/// A fake OpenAI Chat Completions server on 127.0.0.1, faithful to the documented wire format
/// (https://platform.openai.com/docs/api-reference/chat): the <c>chat.completion</c> object, SSE
/// <c>chat.completion.chunk</c>s with <c>"usage":null</c> on every chunk and a final usage chunk with
/// <c>"choices":[]</c> when <c>stream_options.include_usage</c> is set, then <c>data: [DONE]</c>.
/// The upstream model name scripts its behaviour: <c>status-429</c>, <c>hang</c>, <c>slow-stream</c>,
/// <c>tool-call*</c> (calls scripted by the prompt: <see cref="ScriptedToolCalls"/>), <c>fn-call*</c> (answers with a call of the request's first tool, <see cref="ToolArguments"/>, unless the last message is a tool
/// result, which it answers with text), <c>drop-mid-stream</c>, <c>drop-after-space</c>, <c>drop-after-newlines</c>, <c>stall-after-first</c>, <c>no-done</c>, <c>o1*</c> (refuses to stream, as o1 did), and <c>*-cache-write</c>,
/// whose usage also reports <see cref="CacheWriteTokens"/> prompt tokens written to the cache as OpenAI-compatible APIs that bill
/// writes do (<c>prompt_tokens_details.cache_write_tokens</c>, https://openrouter.ai/docs/prompt-caching); any other name answers
/// normally. A last assistant message marked <c>"prefix": true</c> (DeepSeek's and Mistral's prefix completion) is continued: the
/// answer is what follows it (a model named <c>*-prefix-echo</c> repeats the prefix first, as an API that returns the whole
/// message would). <c>GET /v1/models</c> lists models
/// (https://platform.openai.com/docs/api-reference/models/list) and, like OpenAI, refuses a call without a bearer key;
/// the key <see cref="RejectedKey"/> is refused everywhere as OpenAI refuses a wrong key (401 <c>invalid_api_key</c>).
/// </summary>
public sealed partial class FakeOpenAI : FakeServer
{
    public const string RejectedKey = "sk-fake-rejected-0123456789";

    public const string Answer = "Hello from the fake upstream.";
    public const int PromptTokens = 21;
    public const int CompletionTokens = 7;
    public const int CachedTokens = 5;
    public const int CacheWriteTokens = 8;
    public const string ToolCallId = "call_fake0001";
    public const string ToolArguments = "{\"city\":\"Paris\"}";

    public static Task<FakeOpenAI> StartAsync() => StartAsync(new FakeOpenAI(), "/v1");

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, TaskCompletionSource> _held = new();

    /// <summary>Chat requests whose body contains <paramref name="marker"/> wait (recorded) until <see cref="Release"/>.</summary>
    public void Hold(string marker) => _held[marker] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Release(string marker)
    {
        if (_held.TryRemove(marker, out var gate)) gate.TrySetResult();
    }

    protected override void Map(WebApplication app)
    {
        app.MapPost("/v1/chat/completions", HandleAsync);
        app.MapPost("/v1/embeddings", EmbedAsync);
        app.MapPost("/v1/responses", ResponsesAsync);
        app.MapGet("/v1/models", ListModelsAsync);
    }

    private async Task ListModelsAsync(HttpContext http)
    {
        var authorization = http.Request.Headers.Authorization.ToString();
        Requests.Enqueue(new RecordedRequest("", authorization) { Path = http.Request.Path });
        if (!authorization.StartsWith("Bearer ", StringComparison.Ordinal))
        {
            await ErrorAsync(http, 401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from https://platform.openai.com/account/api-keys.", null);
            return;
        }
        if (await RejectedAsync(http)) return;
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync("""
            {
              "object": "list",
              "data": [
                { "id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system" },
                { "id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system" },
                { "id": "text-embedding-3-small", "object": "model", "created": 1705948997, "owned_by": "system" }
              ]
            }
            """);
    }

    /// <summary>OpenAI's answer to a wrong key: 401, the key shown masked.</summary>
    private static async Task<bool> RejectedAsync(HttpContext http)
    {
        if (http.Request.Headers.Authorization.ToString() != "Bearer " + RejectedKey) return false;
        await ErrorAsync(http, 401, $"Incorrect API key provided: {RejectedKey[..6]}{new string('*', 13)}{RejectedKey[^4..]}. You can find your API key at https://platform.openai.com/account/api-keys.", "invalid_api_key");
        return true;
    }

    private static Task ErrorAsync(HttpContext http, int status, string message, string? code)
    {
        http.Response.StatusCode = status;
        return http.Response.WriteAsJsonAsync(new JsonObject
        {
            ["error"] = new JsonObject { ["message"] = message, ["type"] = "invalid_request_error", ["param"] = null, ["code"] = code },
        });
    }

    private async Task HandleAsync(HttpContext http)
    {
        using var reader = new StreamReader(http.Request.Body, Encoding.UTF8);
        var text = await reader.ReadToEndAsync();
        var recorded = new RecordedRequest(text, http.Request.Headers.Authorization.ToString());
        Requests.Enqueue(recorded);
        http.RequestAborted.Register(() => recorded.Aborted = true);
        foreach (var (marker, gate) in _held)
            if (text.Contains(marker, StringComparison.Ordinal)) await gate.Task.WaitAsync(http.RequestAborted);
        if (await RejectedAsync(http)) return;

        var body = JsonNode.Parse(text)!.AsObject();
        var model = body["model"]!.GetValue<string>();
        var stream = body["stream"]?.GetValue<bool>() == true;
        var includeUsage = body["stream_options"]?["include_usage"]?.GetValue<bool>() == true;
        var written = model.EndsWith("-cache-write", StringComparison.Ordinal) ? $",\"cache_write_tokens\":{CacheWriteTokens}" : "";
        var ct = http.RequestAborted;

        if (await StatusAsync(http, model, ct)) return;
        if (stream && model.StartsWith("o1", StringComparison.Ordinal))
        {
            // As OpenAI refused streams for o1 models.
            http.Response.StatusCode = 400;
            await http.Response.WriteAsJsonAsync(new JsonObject
            {
                ["error"] = new JsonObject
                {
                    ["message"] = "Unsupported value: 'stream' does not support true with this model. Only the default (false) value is supported.",
                    ["type"] = "invalid_request_error", ["param"] = "stream", ["code"] = "unsupported_value",
                },
            }, ct);
            return;
        }
        if (model == "bad-json")
        {
            http.Response.ContentType = stream ? "text/event-stream" : "application/json";
            await http.Response.WriteAsync(stream ? "data: {\"id\":\"chatcmpl-x\",\"choices\":[{\n\n" : "{\"id\":\"chatcmpl-x\",\"choi", ct);
            return;
        }
        if (model == "hang")
        {
            await Task.Delay(Timeout.Infinite, ct);
            return;
        }
        if (ScriptedToolCalls.Handles(model))
        {
            await ScriptedToolCalls.AnswerAsync(http, body, ct); // tool-call*: a model that calls the request's tools
            return;
        }

        if (model.StartsWith("fn-call", StringComparison.Ordinal) && body["messages"]!.AsArray()[^1]?["role"]?.GetValue<string>() != "tool")
        {
            await ToolCallAsync(http, body, model, stream, includeUsage, ct);
            return;
        }

        var answer = Answer;
        if (body["messages"]!.AsArray()[^1] is JsonObject last && last["prefix"]?.GetValue<bool>() == true)
        {
            var prefix = last["content"]!.GetValue<string>();
            var rest = Answer.StartsWith(prefix, StringComparison.Ordinal) ? Answer[prefix.Length..] : " " + Answer;
            answer = model.EndsWith("-prefix-echo", StringComparison.Ordinal) ? prefix + rest : rest;
        }

        const string id = "chatcmpl-fake0001";
        const long created = 1_741_569_952;
        if (!stream)
        {
            http.Response.ContentType = "application/json";
            await http.Response.WriteAsync($$"""
                {
                  "id": "{{id}}",
                  "object": "chat.completion",
                  "created": {{created}},
                  "model": "{{model}}-2024-07-18",
                  "choices": [
                    {
                      "index": 0,
                      "message": { "role": "assistant", "content": {{JsonSerializer.Serialize(answer)}}, "refusal": null, "annotations": [] },
                      "logprobs": null,
                      "finish_reason": "stop"
                    }
                  ],
                  "usage": {
                    "prompt_tokens": {{PromptTokens}},
                    "completion_tokens": {{CompletionTokens}},
                    "total_tokens": {{PromptTokens + CompletionTokens}},
                    "prompt_tokens_details": { "cached_tokens": {{CachedTokens}}, "audio_tokens": 0{{written}} },
                    "completion_tokens_details": { "reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0 }
                  },
                  "service_tier": "default",
                  "system_fingerprint": "fp_fake"
                }
                """, ct);
            return;
        }

        http.Response.ContentType = "text/event-stream; charset=utf-8";
        var usageNull = includeUsage ? ",\"usage\":null" : "";
        async Task SendAsync(string json)
        {
            await http.Response.WriteAsync($"data: {json}\n\n", ct);
            await http.Response.Body.FlushAsync(ct);
        }
        string Chunk(string delta, string? finish) =>
            $$"""{"id":"{{id}}","object":"chat.completion.chunk","created":{{created}},"model":"{{model}}-2024-07-18","service_tier":"default","system_fingerprint":"fp_fake","choices":[{"index":0,"delta":{{delta}},"logprobs":null,"finish_reason":{{(finish is null ? "null" : $"\"{finish}\"")}}}]{{usageNull}}}""";

        await SendAsync(Chunk("""{"role":"assistant","content":"","refusal":null}""", null));
        if (model == "drop-before-content")
        {
            await Task.Delay(200, ct);
            http.Abort();
            return;
        }
        if (model == "late-first-token") await Task.Delay(30_000, ct); // past the client's timeout: only a first-token deadline helps
        var pieces = model == "slow-stream" ? Enumerable.Repeat("tick ", 50).ToArray()
            : model == "drop-after-space" ? ["Hello", " from", " "]
            : model == "drop-after-newlines" ? ["\n\n"]
            : System.Text.RegularExpressions.Regex.Split(answer, "(?= )").Where(p => p.Length > 0).ToArray();
        for (var i = 0; i < pieces.Length; i++)
        {
            if (model == "slow-stream") await Task.Delay(100, ct);
            if (model == "drop-mid-stream" && i == 2)
            {
                // Let the gateway read what was sent: a TCP reset discards unread data.
                await Task.Delay(200, ct);
                http.Abort();
                return;
            }
            await SendAsync(Chunk($$"""{"content":{{JsonSerializer.Serialize(pieces[i])}}}""", null));
            if (model == "stall-after-first") await Task.Delay(Timeout.Infinite, ct); // an answer begun and never finished
            if (model is "drop-after-space" or "drop-after-newlines" && i == pieces.Length - 1)
            {
                await Task.Delay(200, ct);
                http.Abort();
                return;
            }
        }
        await SendAsync(Chunk("{}", "stop"));
        if (model == "no-done") return;
        if (includeUsage)
        {
            var usage = $$"""{"prompt_tokens":{{PromptTokens}},"completion_tokens":{{CompletionTokens}},"total_tokens":{{PromptTokens + CompletionTokens}},"prompt_tokens_details":{"cached_tokens":{{CachedTokens}},"audio_tokens":0{{written}}},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}""" + "}";
            await SendAsync($$"""{"id":"{{id}}","object":"chat.completion.chunk","created":{{created}},"model":"{{model}}-2024-07-18","service_tier":"default","system_fingerprint":"fp_fake","choices":[],"usage":""" + usage + "}");
        }
        await http.Response.WriteAsync("data: [DONE]\n\n", ct);
    }

    /// <summary><c>status-NNN</c> models answer that status with OpenAI's error body (a 429 with Retry-After: 7).</summary>
    private static async Task<bool> StatusAsync(HttpContext http, string model, CancellationToken ct)
    {
        if (!model.StartsWith("status-", StringComparison.Ordinal)) return false;
        var status = int.Parse(model[7..], System.Globalization.CultureInfo.InvariantCulture);
        http.Response.StatusCode = status;
        if (status == 429) http.Response.Headers.RetryAfter = "7";
        var (type, code) = status switch
        {
            429 => ("requests", "rate_limit_exceeded"),
            401 => ("invalid_request_error", "invalid_api_key"),
            >= 500 => ("server_error", (string?)null),
            _ => ("invalid_request_error", "invalid_value"),
        };
        await http.Response.WriteAsJsonAsync(new JsonObject
        {
            ["error"] = new JsonObject { ["message"] = $"Fake upstream says {status}.", ["type"] = type, ["param"] = status == 400 ? "temperature" : null, ["code"] = code },
        }, ct);
        return true;
    }

    /// <summary>
    /// A call of the request's first tool, as OpenAI answers one (https://platform.openai.com/docs/guides/function-calling): the message's
    /// <c>tool_calls</c> with <c>content: null</c> and finish reason <c>tool_calls</c>; streamed, a first delta with the call's id, type and
    /// name and empty arguments, then the arguments in pieces under the same <c>index</c>.
    /// </summary>
    private static async Task ToolCallAsync(HttpContext http, JsonObject body, string model, bool stream, bool includeUsage, CancellationToken ct)
    {
        var name = body["tools"]?[0]?["function"]?["name"]?.GetValue<string>() ?? "get_weather";
        const string id = "chatcmpl-fake0002";
        const long created = 1_741_569_953;
        var usage = $$$"""{"prompt_tokens":{{{PromptTokens}}},"completion_tokens":{{{CompletionTokens}}},"total_tokens":{{{PromptTokens + CompletionTokens}}},"prompt_tokens_details":{"cached_tokens":{{{CachedTokens}}},"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}""";
        if (!stream)
        {
            http.Response.ContentType = "application/json";
            await http.Response.WriteAsync($$$"""
                {"id":"{{{id}}}","object":"chat.completion","created":{{{created}}},"model":"{{{model}}}-2024-07-18",
                 "choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"{{{ToolCallId}}}","type":"function",
                   "function":{"name":"{{{name}}}","arguments":{{{JsonSerializer.Serialize(ToolArguments)}}}}}],"refusal":null,"annotations":[]},
                   "logprobs":null,"finish_reason":"tool_calls"}],
                 "usage":{{{usage}}},"service_tier":"default","system_fingerprint":"fp_fake"}
                """, ct);
            return;
        }
        http.Response.ContentType = "text/event-stream; charset=utf-8";
        var usageNull = includeUsage ? ",\"usage\":null" : "";
        async Task SendAsync(string delta, string? finish)
        {
            var chunk = $$$"""{"id":"{{{id}}}","object":"chat.completion.chunk","created":{{{created}}},"model":"{{{model}}}-2024-07-18","system_fingerprint":"fp_fake","choices":[{"index":0,"delta":{{{delta}}},"logprobs":null,"finish_reason":{{{(finish is null ? "null" : $"\"{finish}\"")}}}}]{{{usageNull}}}}""";
            await http.Response.WriteAsync($"data: {chunk}\n\n", ct);
            await http.Response.Body.FlushAsync(ct);
        }
        await SendAsync($$$"""{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"{{{ToolCallId}}}","type":"function","function":{"name":"{{{name}}}","arguments":""}}],"refusal":null}""", null);
        foreach (var piece in (string[])[ToolArguments[..5], ToolArguments[5..]])
            await SendAsync($$$"""{"tool_calls":[{"index":0,"function":{"arguments":{{{JsonSerializer.Serialize(piece)}}}}}]}""", null);
        await SendAsync("{}", "tool_calls");
        if (includeUsage)
            await http.Response.WriteAsync($$$"""data: {"id":"{{{id}}}","object":"chat.completion.chunk","created":{{{created}}},"model":"{{{model}}}-2024-07-18","system_fingerprint":"fp_fake","choices":[],"usage":{{{usage}}}}""" + "\n\n", ct);
        await http.Response.WriteAsync("data: [DONE]\n\n", ct);
    }

    /// <summary>OpenAI's embeddings answer: one 3-dimensional vector per input, 4 prompt tokens per input.</summary>
    private async Task EmbedAsync(HttpContext http)
    {
        using var reader = new StreamReader(http.Request.Body, Encoding.UTF8);
        var text = await reader.ReadToEndAsync();
        Requests.Enqueue(new RecordedRequest(text, http.Request.Headers.Authorization.ToString()) { Path = http.Request.Path });
        var body = JsonNode.Parse(text)!.AsObject();
        var inputs = body["input"] is JsonArray array ? array.Count : 1;
        var data = new JsonArray([.. Enumerable.Range(0, inputs).Select(i => (JsonNode)new JsonObject
        {
            ["object"] = "embedding", ["index"] = i, ["embedding"] = new JsonArray(0.1 * (i + 1), -0.2, 0.3),
        })]);
        await http.Response.WriteAsJsonAsync(new JsonObject
        {
            ["object"] = "list", ["data"] = data, ["model"] = body["model"]!.GetValue<string>(),
            ["usage"] = new JsonObject { ["prompt_tokens"] = 4 * inputs, ["total_tokens"] = 4 * inputs },
        });
    }
}

public sealed class RecordedRequest(string body, string authorization)
{
    public string Body { get; } = body;
    /// <summary>The credential header the fake reads (Authorization, x-api-key or x-goog-api-key).</summary>
    public string Authorization { get; } = authorization;
    public string Path { get; init; } = "";
    public Dictionary<string, string> Headers { get; init; } = [];
    public JsonObject Json => JsonNode.Parse(Body)!.AsObject();
    private volatile bool _aborted;

    /// <summary>Whether the gateway hung up on this request (e.g. because its client went away).</summary>
    public bool Aborted { get => _aborted; set => _aborted = value; }
}
