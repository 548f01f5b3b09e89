using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Fixtures;

/// <summary>
/// What <see cref="FakeOpenAI"/> answers for upstream models named <c>tool-call*</c>: a model that uses tools, in OpenAI's
/// documented Chat Completions format (https://platform.openai.com/docs/api-reference/chat/object and
/// https://platform.openai.com/docs/api-reference/chat-streaming): <c>message.tool_calls</c> with <c>content: null</c>, or streamed
/// <c>delta.tool_calls</c> whose first piece per call carries <c>index</c>, <c>id</c>, <c>type</c> and <c>function.name</c> with
/// empty arguments and whose later pieces carry only <c>index</c> and a piece of <c>function.arguments</c>; finish_reason
/// <c>tool_calls</c>. The answer is decided from the request, as a model would:
/// <list type="bullet">
/// <item>a <c>tool</c> result after the last assistant turn → the text <c>Tool said: </c> + the results (joined by <c> | </c>);</item>
/// <item>else every <c>call NAME with {json}</c> in the last user message → a call of NAME with that JSON as its arguments (two
/// of them: parallel calls); none, but tools given → one call of the first tool with <c>{}</c>;</item>
/// <item>else <see cref="FakeOpenAI.Answer"/>.</item>
/// </list>
/// Text answers honour <c>stop</c> (cut before the first stop string, finish_reason <c>stop</c>) and <c>max_tokens</c> /
/// <c>max_completion_tokens</c> (one token a word; cut → finish_reason <c>length</c>), as OpenAI does.
/// </summary>
public static class ScriptedToolCalls
{
    public const string ModelPrefix = "tool-call";
    public const string ResultPrefix = "Tool said: ";

    public static bool Handles(string model) => model.StartsWith(ModelPrefix, StringComparison.Ordinal);

    public static async Task AnswerAsync(HttpContext http, JsonObject request, CancellationToken ct)
    {
        var model = request["model"]!.GetValue<string>() + "-2024-07-18";
        var stream = request["stream"]?.GetValue<bool>() == true;
        var includeUsage = request["stream_options"]?["include_usage"]?.GetValue<bool>() == true;
        var messages = request["messages"]!.AsArray().OfType<JsonObject>().ToList();
        var (text, finish, calls) = Decide(request, messages);
        var completionTokens = calls.Count > 0 ? calls.Sum(c => c.Arguments.Length / 4 + 5) : Math.Max(1, Words(text).Length);
        var usage = new JsonObject
        {
            ["prompt_tokens"] = FakeOpenAI.PromptTokens, ["completion_tokens"] = completionTokens,
            ["total_tokens"] = FakeOpenAI.PromptTokens + completionTokens,
            ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = 0, ["audio_tokens"] = 0 },
            ["completion_tokens_details"] = new JsonObject
            {
                ["reasoning_tokens"] = 0, ["audio_tokens"] = 0, ["accepted_prediction_tokens"] = 0, ["rejected_prediction_tokens"] = 0,
            },
        };
        const string id = "chatcmpl-faketools01";
        const long created = 1_741_569_952;

        if (!stream)
        {
            var message = new JsonObject { ["role"] = "assistant", ["content"] = calls.Count > 0 ? null : text };
            if (calls.Count > 0)
                message["tool_calls"] = new JsonArray([.. calls.Select(c => (JsonNode)new JsonObject
                {
                    ["id"] = c.Id, ["type"] = "function", ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = c.Arguments },
                })]);
            message["refusal"] = null;
            message["annotations"] = new JsonArray();
            await http.Response.WriteAsJsonAsync(new JsonObject
            {
                ["id"] = id, ["object"] = "chat.completion", ["created"] = created, ["model"] = model,
                ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["message"] = message, ["logprobs"] = null, ["finish_reason"] = finish }),
                ["usage"] = usage, ["service_tier"] = "default", ["system_fingerprint"] = "fp_fake",
            }, ct);
            return;
        }

        http.Response.ContentType = "text/event-stream; charset=utf-8";
        async Task SendAsync(JsonObject chunk)
        {
            await http.Response.WriteAsync($"data: {chunk.ToJsonString()}\n\n", ct);
            await http.Response.Body.FlushAsync(ct);
        }
        JsonObject Chunk(JsonObject delta, string? finishReason)
        {
            var chunk = new JsonObject
            {
                ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = created, ["model"] = model,
                ["service_tier"] = "default", ["system_fingerprint"] = "fp_fake",
                ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["logprobs"] = null, ["finish_reason"] = finishReason }),
            };
            if (includeUsage) chunk["usage"] = null;
            return chunk;
        }

        if (calls.Count == 0)
        {
            await SendAsync(Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "", ["refusal"] = null }, null));
            foreach (var word in Words(text)) await SendAsync(Chunk(new JsonObject { ["content"] = word }, null));
        }
        for (var i = 0; i < calls.Count; i++)
        {
            // The first call's header rides on the chunk that names the role, as OpenAI streams it.
            var header = new JsonObject
            {
                ["index"] = i, ["id"] = calls[i].Id, ["type"] = "function",
                ["function"] = new JsonObject { ["name"] = calls[i].Name, ["arguments"] = "" },
            };
            await SendAsync(Chunk(i == 0
                ? new JsonObject { ["role"] = "assistant", ["content"] = null, ["tool_calls"] = new JsonArray(header), ["refusal"] = null }
                : new JsonObject { ["tool_calls"] = new JsonArray(header) }, null));
            foreach (var piece in Pieces(calls[i].Arguments, 3))
                await SendAsync(Chunk(new JsonObject
                {
                    ["tool_calls"] = new JsonArray(new JsonObject { ["index"] = i, ["function"] = new JsonObject { ["arguments"] = piece } }),
                }, null));
        }
        await SendAsync(Chunk(new JsonObject(), finish));
        if (includeUsage)
        {
            var last = Chunk(new JsonObject(), null);
            last["choices"] = new JsonArray();
            last["usage"] = usage;
            await SendAsync(last);
        }
        await http.Response.WriteAsync("data: [DONE]\n\n", ct);
    }

    private sealed record Call(string Id, string Name, string Arguments);

    private static (string Text, string Finish, List<Call> Calls) Decide(JsonObject request, List<JsonObject> messages)
    {
        var lastAssistant = messages.FindLastIndex(m => Role(m) == "assistant");
        var results = messages.Skip(lastAssistant + 1).Where(m => Role(m) == "tool").Select(m => Content(m)).ToList();
        if (results.Count > 0) return Cut(request, ResultPrefix + string.Join(" | ", results));

        var calls = new List<Call>();
        var tools = request["tools"] as JsonArray;
        if (tools is { Count: > 0 })
        {
            var user = messages.LastOrDefault(m => Role(m) == "user") is { } last ? Content(last) : "";
            foreach (var (name, arguments) in Scripted(user))
                calls.Add(new Call($"call_{Guid.NewGuid():N}"[..29], name, arguments));
            if (calls.Count == 0)
                calls.Add(new Call($"call_{Guid.NewGuid():N}"[..29], tools[0]!["function"]!["name"]!.GetValue<string>(), "{}"));
            return ("", "tool_calls", calls);
        }
        return Cut(request, FakeOpenAI.Answer);
    }

    // "call NAME with {json}" pieces of a text: each JSON object is read whole (it may hold braces of its own).
    private static IEnumerable<(string Name, string Arguments)> Scripted(string text)
    {
        var matches = System.Text.RegularExpressions.Regex.Matches(text, @"call (\w+) with (?=\{)");
        foreach (System.Text.RegularExpressions.Match match in matches)
        {
            var rest = Encoding.UTF8.GetBytes(text[(match.Index + match.Length)..]);
            var reader = new Utf8JsonReader(rest, new JsonReaderOptions { AllowTrailingCommas = false });
            string arguments;
            try
            {
                arguments = JsonElement.ParseValue(ref reader).GetRawText();
            }
            catch (JsonException)
            {
                continue;
            }
            yield return (match.Groups[1].Value, arguments);
        }
    }

    // A text answer cut as OpenAI cuts it: before the first stop string, else after max_tokens words.
    private static (string, string, List<Call>) Cut(JsonObject request, string text)
    {
        if (request["stop"] is JsonArray stops)
            foreach (var stop in stops.Select(s => s!.GetValue<string>()))
                if (text.IndexOf(stop, StringComparison.Ordinal) is var at and >= 0) text = text[..at];
        var max = request["max_completion_tokens"]?.GetValue<int>() ?? request["max_tokens"]?.GetValue<int>();
        var words = Words(text);
        return max is { } limit && words.Length > limit ? (string.Concat(words.Take(limit)), "length", []) : (text, "stop", []);
    }

    private static string[] Words(string text) => [.. System.Text.RegularExpressions.Regex.Split(text, "(?= )").Where(p => p.Length > 0)];

    private static IEnumerable<string> Pieces(string text, int count)
    {
        var size = Math.Max(1, (text.Length + count - 1) / count);
        for (var at = 0; at < text.Length; at += size) yield return text[at..Math.Min(text.Length, at + size)];
    }

    private static string? Role(JsonObject message) => message["role"]?.GetValue<string>();

    // A message's text: its string content, or its text parts joined.
    private static string Content(JsonObject message) => message["content"] switch
    {
        JsonValue value when value.TryGetValue<string>(out var text) => text,
        JsonArray parts => string.Concat(parts.OfType<JsonObject>().Where(p => p["type"]?.GetValue<string>() == "text").Select(p => p["text"]!.GetValue<string>())),
        _ => "",
    };
}
