using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Fixtures;

/// <summary>
/// A fake Anthropic Messages API (POST /v1/messages), written from https://docs.anthropic.com/en/api/messages
/// and the SDK's recorded streams, validating as the API does (strictly, as it did before it began
/// merging turns): x-api-key and anthropic-version headers, max_tokens required, user/assistant roles
/// only (no "system" role), alternating turns starting with user, tool_result blocks first in their
/// user turn and naming a preceding tool_use, no turn whose text is only whitespace; Sonnet 4.5+ refuses temperature with top_p, and version
/// 2026-10-21 refuses any sampling parameter. A last assistant turn is a prefill the answer continues (it may not end in
/// whitespace), which Sonnet 4.6 and later refuse. Model names script behaviour: *-max, status-NNN,
/// *-overloaded-midstream, *-long-prompt, and the prompt cache (usage as documented in
/// https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching#tracking-cache-performance: input_tokens excludes cache
/// reads and writes, <c>cache_creation</c> splits writes by entry lifetime, message_start carries it all and message_delta's
/// cumulative usage has no split): *-cache-writes reads 5,000 tokens and writes 1,000 to 5-minute and 2,000 to 1-hour entries;
/// *-cache-1h-all writes the whole prompt (one token per word of its text) to 1-hour entries.
/// </summary>
public sealed class FakeAnthropic : FakeServer
{
    public const string ApiKey = "fake-anthropic-key";
    public const string ToolUseId = "toolu_01NRLabsLyVHZPKxbKvkfSMn";
    public const string Answer = "It is 21 degrees in Paris.";

    private static readonly string[] SamplingParameters = ["temperature", "top_p", "top_k"];

    public static Task<FakeAnthropic> StartAsync() => StartAsync(new FakeAnthropic(), "/v1");

    protected override void Map(WebApplication app)
    {
        app.MapPost("/v1/messages", HandleAsync);
        app.MapPost("/v1/messages/count_tokens", CountTokensAsync);
        app.MapGet("/v1/models", ListModelsAsync);
    }

    /// <summary>Tokens the fake's own count adds to a request's words, so a test can tell its count from the gateway's tokenizer.</summary>
    public const int CountTokensOverhead = 1000;

    /// <summary>
    /// POST /v1/messages/count_tokens (https://docs.anthropic.com/en/api/messages-count-tokens): <c>{"input_tokens": N}</c>; like
    /// Messages, but no <c>max_tokens</c> (a request carrying one is refused, as an unknown field).
    /// </summary>
    private async Task CountTokensAsync(HttpContext http)
    {
        using var reader = new StreamReader(http.Request.Body, Encoding.UTF8);
        var text = await reader.ReadToEndAsync();
        var recorded = new RecordedRequest(text, http.Request.Headers["x-api-key"].ToString())
        {
            Path = http.Request.Path, Headers = new() { ["anthropic-version"] = http.Request.Headers["anthropic-version"].ToString() },
        };
        Requests.Enqueue(recorded);
        if (recorded.Authorization != ApiKey)
        {
            await ErrorAsync(http, 401, "authentication_error", "invalid x-api-key");
            return;
        }
        var body = JsonNode.Parse(text)!.AsObject();
        if (body["max_tokens"] is not null)
        {
            await ErrorAsync(http, 400, "invalid_request_error", "max_tokens: Extra inputs are not permitted");
            return;
        }
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync(new JsonObject { ["input_tokens"] = CountTokensOverhead + Words(body) }.ToJsonString());
    }

    /// <summary>GET /v1/models (https://docs.anthropic.com/en/api/models-list): newest first, one page.</summary>
    private async Task ListModelsAsync(HttpContext http)
    {
        var version = http.Request.Headers["anthropic-version"].ToString();
        var recorded = new RecordedRequest("", http.Request.Headers["x-api-key"].ToString())
        {
            Path = http.Request.Path, Headers = new() { ["anthropic-version"] = version },
        };
        Requests.Enqueue(recorded);
        if (recorded.Authorization != ApiKey)
        {
            await ErrorAsync(http, 401, "authentication_error", "invalid x-api-key");
            return;
        }
        if (string.IsNullOrEmpty(version))
        {
            await ErrorAsync(http, 400, "invalid_request_error", "anthropic-version: header is required");
            return;
        }
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync("""
            {
              "data": [
                { "type": "model", "id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z" },
                { "type": "model", "id": "claude-haiku-4-5-20251001", "display_name": "Claude Haiku 4.5", "created_at": "2025-10-01T00:00:00Z" }
              ],
              "has_more": false,
              "first_id": "claude-sonnet-4-5-20250929",
              "last_id": "claude-haiku-4-5-20251001"
            }
            """);
    }

    private async Task HandleAsync(HttpContext http)
    {
        using var reader = new StreamReader(http.Request.Body, Encoding.UTF8);
        var text = await reader.ReadToEndAsync();
        var version = http.Request.Headers["anthropic-version"].ToString();
        var recorded = new RecordedRequest(text, http.Request.Headers["x-api-key"].ToString())
        {
            Path = http.Request.Path, Headers = new() { ["anthropic-version"] = version, ["anthropic-beta"] = http.Request.Headers["anthropic-beta"].ToString() },
        };
        Requests.Enqueue(recorded);

        if (recorded.Authorization != ApiKey)
        {
            await ErrorAsync(http, 401, "authentication_error", "invalid x-api-key");
            return;
        }
        if (string.IsNullOrEmpty(version))
        {
            await ErrorAsync(http, 400, "invalid_request_error", "anthropic-version: header is required");
            return;
        }
        JsonObject body;
        try
        {
            body = JsonNode.Parse(text)!.AsObject();
        }
        catch (JsonException)
        {
            await ErrorAsync(http, 400, "invalid_request_error", "There was an issue with the request body: invalid JSON.");
            return;
        }
        var model = body["model"]?.GetValue<string>() ?? "";
        if (model.StartsWith("status-", StringComparison.Ordinal))
        {
            var status = int.Parse(model[7..], System.Globalization.CultureInfo.InvariantCulture);
            var type = status switch { 429 => "rate_limit_error", 529 => "overloaded_error", 500 => "api_error", 401 => "authentication_error", _ => "invalid_request_error" };
            if (status == 429) http.Response.Headers.RetryAfter = "12";
            await ErrorAsync(http, status, type, status == 529 ? "Overloaded" : $"Fake Anthropic says {status}.");
            return;
        }
        if (Validate(body, version) is { } problem)
        {
            await ErrorAsync(http, 400, "invalid_request_error", problem);
            return;
        }
        if (model.EndsWith("-long-prompt", StringComparison.Ordinal))
        {
            await ErrorAsync(http, 400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum");
            return;
        }

        var messages = body["messages"]!.AsArray();
        var prefill = messages[^1]!["role"]!.GetValue<string>() == "assistant" ? TextOf(messages[^1]!["content"]) : null;
        if (prefill is not null && (model.Contains("sonnet-4-6", StringComparison.Ordinal) || model.Contains("opus-5", StringComparison.Ordinal)))
        {
            await ErrorAsync(http, 400, "invalid_request_error", "This model does not support assistant message prefill. The conversation must end with a user message.");
            return;
        }
        if (prefill is { Length: > 0 } && char.IsWhiteSpace(prefill[^1]))
        {
            await ErrorAsync(http, 400, "invalid_request_error", "messages: final assistant content cannot end with trailing whitespace");
            return;
        }
        var lastContent = messages[^1]!["content"];
        var answeringTool = lastContent is JsonArray blocks && blocks.Any(b => b!["type"]?.GetValue<string>() == "tool_result");
        var forced = body["tool_choice"]?["type"]?.GetValue<string>() == "tool" ? body["tool_choice"]!["name"]!.GetValue<string>() : null;
        var offersTools = body["tools"] is JsonArray { Count: > 0 } && body["tool_choice"]?["type"]?.GetValue<string>() != "none";
        var stream = body["stream"]?.GetValue<bool>() == true;
        var maxed = model.EndsWith("-max", StringComparison.Ordinal);
        var cache = model.EndsWith("-cache-writes", StringComparison.Ordinal) ? new Cache(40, 1000, 2000, 5000)
            : model.EndsWith("-cache-1h-all", StringComparison.Ordinal) ? new Cache(0, 0, Words(body), 0)
            : Cache.Default;

        List<JsonObject> content;
        string stopReason;
        if (forced is not null)
        {
            content = [new JsonObject { ["type"] = "tool_use", ["id"] = ToolUseId, ["name"] = forced, ["input"] = new JsonObject { ["city"] = "Paris", ["tempC"] = 21 } }];
            stopReason = "tool_use";
        }
        else if (offersTools && !answeringTool)
        {
            content =
            [
                new JsonObject { ["type"] = "text", ["text"] = "I'll check." },
                new JsonObject { ["type"] = "tool_use", ["id"] = ToolUseId, ["name"] = "get_weather", ["input"] = new JsonObject { ["location"] = "Paris" } },
            ];
            stopReason = "tool_use";
        }
        else
        {
            var said = maxed ? "It is" : answeringTool ? Answer : "Hello from Claude.";
            // A prefilled answer is continued: the content is what follows the prefill, never the prefill again.
            if (prefill is not null) said = said.StartsWith(prefill, StringComparison.Ordinal) ? said[prefill.Length..] : " " + said;
            content = [new JsonObject { ["type"] = "text", ["text"] = said }];
            stopReason = maxed ? "max_tokens" : "end_turn";
        }

        if (!stream)
        {
            http.Response.ContentType = "application/json";
            await http.Response.WriteAsync(new JsonObject
            {
                ["id"] = "msg_013Zva2CMHLNnXjNJJKqJ2EF", ["type"] = "message", ["role"] = "assistant", ["model"] = model + "-20250929",
                ["content"] = new JsonArray([.. content]), ["stop_reason"] = stopReason, ["stop_sequence"] = null,
                ["usage"] = Usage(cache, 12, split: true),
            }.ToJsonString());
            return;
        }

        http.Response.ContentType = "text/event-stream; charset=utf-8";
        async Task SendAsync(string name, JsonObject data)
        {
            await http.Response.WriteAsync($"event: {name}\ndata: {data.ToJsonString()}\n\n");
            await http.Response.Body.FlushAsync();
        }
        await SendAsync("message_start", new JsonObject
        {
            ["type"] = "message_start",
            ["message"] = new JsonObject
            {
                ["id"] = "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", ["type"] = "message", ["role"] = "assistant", ["content"] = new JsonArray(),
                ["model"] = model + "-20250929", ["stop_reason"] = null, ["stop_sequence"] = null,
                ["usage"] = Usage(cache, 1, split: true),
            },
        });
        await SendAsync("ping", new JsonObject { ["type"] = "ping" });
        for (var i = 0; i < content.Count; i++)
        {
            var block = content[i];
            if (block["type"]!.GetValue<string>() == "text")
            {
                await SendAsync("content_block_start", new JsonObject { ["type"] = "content_block_start", ["index"] = i, ["content_block"] = new JsonObject { ["type"] = "text", ["text"] = "" } });
                var words = block["text"]!.GetValue<string>().Split(' ');
                for (var w = 0; w < words.Length; w++)
                {
                    await SendAsync("content_block_delta", new JsonObject
                    {
                        ["type"] = "content_block_delta", ["index"] = i, ["delta"] = new JsonObject { ["type"] = "text_delta", ["text"] = (w == 0 ? "" : " ") + words[w] },
                    });
                    if (w == 0 && model.EndsWith("-overloaded-midstream", StringComparison.Ordinal))
                    {
                        await SendAsync("error", new JsonObject { ["type"] = "error", ["error"] = new JsonObject { ["type"] = "overloaded_error", ["message"] = "Overloaded" } });
                        return;
                    }
                }
            }
            else
            {
                await SendAsync("content_block_start", new JsonObject
                {
                    ["type"] = "content_block_start", ["index"] = i,
                    ["content_block"] = new JsonObject { ["type"] = "tool_use", ["id"] = block["id"]!.GetValue<string>(), ["name"] = block["name"]!.GetValue<string>(), ["input"] = new JsonObject() },
                });
                var json = block["input"]!.ToJsonString();
                foreach (var piece in new[] { "", json[..(json.Length / 2)], json[(json.Length / 2)..] })
                {
                    await SendAsync("content_block_delta", new JsonObject
                    {
                        ["type"] = "content_block_delta", ["index"] = i, ["delta"] = new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = piece },
                    });
                }
            }
            await SendAsync("content_block_stop", new JsonObject { ["type"] = "content_block_stop", ["index"] = i });
        }
        await SendAsync("message_delta", new JsonObject
        {
            ["type"] = "message_delta", ["delta"] = new JsonObject { ["stop_reason"] = stopReason, ["stop_sequence"] = null },
            // Older API versions sent only output_tokens here; the current one repeats every count, cumulative, without the split.
            ["usage"] = cache == Cache.Default ? new JsonObject { ["output_tokens"] = 12 } : Usage(cache, 12, split: false),
        });
        await SendAsync("message_stop", new JsonObject { ["type"] = "message_stop" });
    }

    private static string TextOf(JsonNode? content) => content switch
    {
        JsonValue value => value.GetValue<string>(),
        JsonArray blocks => string.Concat(blocks.Where(b => b!["type"]?.GetValue<string>() == "text").Select(b => b!["text"]!.GetValue<string>())),
        _ => "",
    };

    /// <summary>Prompt tokens by how they are billed: plain input, written to 5-minute or 1-hour cache entries, read from the cache.</summary>
    private readonly record struct Cache(int Input, int Write5m, int Write1h, int Read)
    {
        public static readonly Cache Default = new(20, 5, 0, 10);
    }

    private static JsonObject Usage(Cache cache, int output, bool split)
    {
        var usage = new JsonObject
        {
            ["input_tokens"] = cache.Input, ["cache_creation_input_tokens"] = cache.Write5m + cache.Write1h, ["cache_read_input_tokens"] = cache.Read,
        };
        if (split) usage["cache_creation"] = new JsonObject { ["ephemeral_5m_input_tokens"] = cache.Write5m, ["ephemeral_1h_input_tokens"] = cache.Write1h };
        usage["output_tokens"] = output;
        if (split) usage["service_tier"] = "standard";
        return usage;
    }

    // The words of the prompt's text (system and every text block), a stand-in for its tokens that never exceeds the tokenizer's count.
    private static int Words(JsonObject body)
    {
        var texts = new List<string>();
        if (body["system"] is JsonValue system) texts.Add(system.GetValue<string>());
        foreach (var message in body["messages"]!.AsArray())
        {
            if (message!["content"] is JsonValue text) texts.Add(text.GetValue<string>());
            else if (message["content"] is JsonArray blocks)
                texts.AddRange(blocks.Where(b => b!["type"]?.GetValue<string>() == "text").Select(b => b!["text"]!.GetValue<string>()));
        }
        return texts.Sum(t => t.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    private static string? Validate(JsonObject body, string version)
    {
        if (body["model"] is null) return "model: Field required";
        if (body["max_tokens"] is null) return "max_tokens: Field required";
        if (body["messages"] is not JsonArray { Count: > 0 } messages) return "messages: Field required";
        var seenToolUse = new HashSet<string>();
        string? previous = null;
        for (var m = 0; m < messages.Count; m++)
        {
            var role = messages[m]!["role"]?.GetValue<string>();
            if (role is not ("user" or "assistant"))
                return $"messages: Unexpected role \"{role}\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role.";
            if (m == 0 && role != "user") return "messages: first message must use the \"user\" role";
            if (role == previous) return $"messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"{role}\" roles in a row";
            previous = role;
            if (messages[m]!["content"] is JsonArray blocks)
            {
                if (blocks.All(b => b!["type"]?.GetValue<string>() == "text" && string.IsNullOrWhiteSpace(b["text"]?.GetValue<string>())))
                    return "messages: text content blocks must contain non-whitespace text";
                var sawOther = false;
                foreach (var block in blocks)
                {
                    var type = block!["type"]?.GetValue<string>();
                    if (type == "tool_use") seenToolUse.Add(block["id"]!.GetValue<string>());
                    if (type == "tool_result")
                    {
                        if (sawOther) return $"messages.{m}.content: tool_result blocks must come first in a user message";
                        if (!seenToolUse.Contains(block["tool_use_id"]!.GetValue<string>())) return $"messages.{m}.content: tool_result block(s) provided when previous message does not have tool_use blocks";
                    }
                    else
                    {
                        sawOther = true;
                    }
                    if (type == "image" && block["source"]?["type"]?.GetValue<string>() is not ("base64" or "url")) return "image.source.type: Input should be 'base64' or 'url'";
                    if (type == "image" && block["source"]?["type"]?.GetValue<string>() == "base64"
                        && block["source"]?["media_type"]?.GetValue<string>() is not ("image/jpeg" or "image/png" or "image/gif" or "image/webp"))
                        return "image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'";
                }
            }
        }
        var sampling = SamplingParameters.Where(p => body[p] is not null).ToList();
        if (string.CompareOrdinal(version, "2026-10-21") >= 0 && sampling.Count > 0) return $"{sampling[0]}: Extra inputs are not permitted";
        var model = body["model"]!.GetValue<string>();
        if (model.Contains("sonnet-4-5", StringComparison.Ordinal) && body["temperature"] is not null && body["top_p"] is not null)
            return "temperature and top_p cannot both be specified for this model. Please use only one.";
        if (body["temperature"] is JsonValue t && t.GetValue<double>() is < 0 or > 1) return "temperature: Input should be less than or equal to 1";
        if (body["tool_choice"] is not null && body["tools"] is not JsonArray { Count: > 0 }) return "tool_choice: tool_choice may only be specified while providing tools.";
        if (body["tools"] is JsonArray tools && tools.Any(tool => tool!["input_schema"]?["type"]?.GetValue<string>() != "object"))
            return "tools.0.custom.input_schema.type: Input should be 'object'";
        return null;
    }

    private static async Task ErrorAsync(HttpContext http, int status, string type, string message)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync(new JsonObject
        {
            ["type"] = "error", ["error"] = new JsonObject { ["type"] = type, ["message"] = message }, ["request_id"] = "req_011CSHoEeqs5C35K2UUqR7Fy",
        }.ToJsonString());
    }
}
