using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Anthropic;
using Anthropic.Models.Messages;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

/// <summary>
/// Tool round trips, images, stop sequences, the output limit and a broken stream through the Anthropic front door, with
/// Anthropic's official .NET SDK as the client and an OpenAI-compatible upstream that calls tools (<see cref="ScriptedToolCalls"/>):
/// what Anthropic's clients send is translated to OpenAI's chat request, and OpenAI's tool calls come back as <c>tool_use</c>
/// blocks (streamed: <c>input_json_delta</c> pieces).
/// </summary>
public sealed class AnthropicToolTests(TestEnvironment env)
{
    private static readonly Tool Weather = new()
    {
        Name = "get_weather", Description = "The weather in a city now.",
        InputSchema = new InputSchema
        {
            Properties = new Dictionary<string, JsonElement> { ["city"] = JsonSerializer.SerializeToElement(new { type = "string" }) },
            Required = ["city"],
        },
    };

    private static readonly Tool Time = new()
    {
        Name = "get_time", Description = "The local time in a city.",
        InputSchema = new InputSchema
        {
            Properties = new Dictionary<string, JsonElement> { ["city"] = JsonSerializer.SerializeToElement(new { type = "string" }) },
        },
    };

    private AnthropicClient Client(string key) => new() { ApiKey = key, BaseUrl = env.Gateway.BaseAddress.ToString().TrimEnd('/'), MaxRetries = 0 };

    private async Task<(AnthropicClient Client, string Alias)> ToolModelAsync(string upstream = ScriptedToolCalls.ModelPrefix)
    {
        var alias = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, upstream);
        var (key, _) = await env.Gateway.CreateKeyAsync();
        return (Client(key), alias);
    }

    private static MessageCreateParams Ask(string alias, string prompt, params Tool[] tools) => new()
    {
        Model = alias, MaxTokens = 512, Messages = [new UserMessageParam { Content = prompt }],
        Tools = [.. tools.Select(t => (ToolUnion)t)],
    };

    [Fact]
    public async Task Messages_ModelCallsATool_AnswersAToolUseBlockWithTheArguments()
    {
        var (client, alias) = await ToolModelAsync();
        var marker = "single-" + Guid.NewGuid().ToString("N");
        var message = await client.Messages.Create(Ask(alias, $$"""{{marker}}: call get_weather with {"city":"Paris"}""", Weather),
            TestContext.Current.CancellationToken);

        Assert.Equal("tool_use", message.StopReason?.Raw());
        var call = Assert.Single(ToolUses(message.Content));
        Assert.Equal("get_weather", call.Name);
        Assert.Equal("Paris", call.Input["city"].GetString());
        Assert.False(string.IsNullOrEmpty(call.ID));
        // The upstream was given the tool as an OpenAI function, its schema as the parameters.
        var tool = env.Upstream.Find(marker)!.Json["tools"]![0]!;
        Assert.Equal(("function", "get_weather"), (tool["type"]!.GetValue<string>(), tool["function"]!["name"]!.GetValue<string>()));
        Assert.Equal("city", tool["function"]!["parameters"]!["required"]![0]!.GetValue<string>());
    }

    [Fact]
    public async Task Messages_ModelCallsTwoToolsAtOnce_AnswersTwoToolUseBlocksInOrder()
    {
        var (client, alias) = await ToolModelAsync();
        var message = await client.Messages.Create(Ask(alias,
            """call get_weather with {"city":"Paris"} and call get_time with {"city":"Tokyo","detail":{"seconds":true}}""", Weather, Time),
            TestContext.Current.CancellationToken);

        Assert.Equal("tool_use", message.StopReason?.Raw());
        var calls = ToolUses(message.Content);
        Assert.Equal(["get_weather", "get_time"], calls.Select(c => c.Name));
        Assert.Equal("Tokyo", calls[1].Input["city"].GetString());
        Assert.True(calls[1].Input["detail"].GetProperty("seconds").GetBoolean());
        Assert.NotEqual(calls[0].ID, calls[1].ID);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task Messages_StreamedToolCalls_AreToolUseBlocksBuiltFromInputJsonDeltas(int count)
    {
        var (client, alias) = await ToolModelAsync();
        var prompt = count == 1 ? """call get_weather with {"city":"Paris"}"""
            : """call get_weather with {"city":"Paris"} then call get_time with {"city":"Tokyo"}""";
        var (text, calls, stopReason) = await StreamAsync(client, Ask(alias, prompt, Weather, Time));

        Assert.Equal("tool_use", stopReason);
        Assert.Equal("", text);
        Assert.Equal(count, calls.Count);
        Assert.Equal(("get_weather", "Paris"), (calls[0].Name, calls[0].Input["city"]!.GetValue<string>()));
        if (count == 2) Assert.Equal(("get_time", "Tokyo"), (calls[1].Name, calls[1].Input["city"]!.GetValue<string>()));
        Assert.All(calls, c => Assert.StartsWith("call_", c.Id, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Messages_ToolResultSentBack_TheModelAnswersWithIt(bool streamed)
    {
        var (client, alias) = await ToolModelAsync();
        var marker = "round-trip-" + Guid.NewGuid().ToString("N");
        var ask = Ask(alias, $$"""{{marker}} call get_weather with {"city":"Paris"} and call get_time with {"city":"Paris"}""", Weather, Time);
        var first = await client.Messages.Create(ask, TestContext.Current.CancellationToken);
        var calls = ToolUses(first.Content);
        Assert.Equal(2, calls.Count);

        var answers = new Dictionary<string, string> { ["get_weather"] = "18 degrees and sunny", ["get_time"] = "14:05" };
        var next = ask with
        {
            Messages =
            [
                .. ask.Messages,
                new AssistantMessageParam { Content = calls.Select(c => (ContentBlockParam)new ToolUseBlockParam { ID = c.ID, Name = c.Name, Input = c.Input }).ToList() },
                new UserMessageParam
                {
                    Content = new List<ContentBlockParam>([.. calls.Select(c => (ContentBlockParam)new ToolResultBlockParam { ToolUseID = c.ID, Content = answers[c.Name] }),
                        new TextBlockParam { Text = "Thanks." }]),
                },
            ],
        };
        string text, stopReason;
        if (streamed)
        {
            (text, var more, stopReason) = await StreamAsync(client, next);
            Assert.Empty(more);
        }
        else
        {
            var final = await client.Messages.Create(next, TestContext.Current.CancellationToken);
            text = string.Concat(final.Content.Select(b => b.TryPickText(out var t) ? t.Text : ""));
            stopReason = final.StopReason?.Raw()!;
        }

        Assert.Equal("end_turn", stopReason);
        Assert.Equal(ScriptedToolCalls.ResultPrefix + "18 degrees and sunny | 14:05", text);
        // Upstream: the assistant's calls, then one tool message per result (before the turn's text), as OpenAI orders them.
        var sent = env.Upstream.Requests.Last(r => r.Body.Contains(marker, StringComparison.Ordinal) && r.Body.Contains("14:05", StringComparison.Ordinal)).Json;
        var messages = sent["messages"]!.AsArray();
        Assert.Equal(["user", "assistant", "tool", "tool", "user"], messages.Select(m => m!["role"]!.GetValue<string>()));
        Assert.Equal(calls[0].ID, messages[1]!["tool_calls"]![0]!["id"]!.GetValue<string>());
        Assert.Equal("""{"city":"Paris"}""", messages[1]!["tool_calls"]![0]!["function"]!["arguments"]!.GetValue<string>());
        Assert.Equal((calls[1].ID, "14:05"), (messages[3]!["tool_call_id"]!.GetValue<string>(), messages[3]!["content"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Messages_Base64Image_ReachesTheUpstreamAsADataUrl()
    {
        var (client, alias) = await ToolModelAsync();
        var marker = "image-" + Guid.NewGuid().ToString("N");
        var png = Convert.ToBase64String([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3]);
        var message = await client.Messages.Create(new MessageCreateParams
        {
            Model = alias, MaxTokens = 100,
            Messages =
            [
                new UserMessageParam
                {
                    Content = new List<ContentBlockParam>
                    {
                        new ImageBlockParam { Source = new Base64ImageSource { Data = png, MediaType = MediaType.ImagePng } }, new TextBlockParam { Text = marker },
                    },
                },
            ],
        }, TestContext.Current.CancellationToken);

        Assert.Equal(FakeOpenAI.Answer, string.Concat(message.Content.Select(b => b.TryPickText(out var t) ? t.Text : "")));
        var parts = env.Upstream.Find(marker)!.Json["messages"]![0]!["content"]!.AsArray();
        Assert.Equal(("image_url", "data:image/png;base64," + png), (parts[0]!["type"]!.GetValue<string>(), parts[0]!["image_url"]!["url"]!.GetValue<string>()));
        Assert.Equal(("text", marker), (parts[1]!["type"]!.GetValue<string>(), parts[1]!["text"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Messages_SystemMessageAmongTheMessages_ReachesTheUpstreamInItsPlace()
    {
        // Claude Code sends its environment this way, after the user's turn.
        var (client, alias) = await ToolModelAsync();
        var marker = "system-" + Guid.NewGuid().ToString("N");
        var message = await client.Messages.Create(new MessageCreateParams
        {
            Model = alias, MaxTokens = 100, System = "Be brief.",
            Messages = [new UserMessageParam { Content = marker }, new SystemMessageParam { Content = "The working directory is /tmp." }],
        }, TestContext.Current.CancellationToken);

        Assert.Equal(FakeOpenAI.Answer, string.Concat(message.Content.Select(b => b.TryPickText(out var t) ? t.Text : "")));
        var sent = env.Upstream.Find(marker)!.Json["messages"]!.AsArray();
        Assert.Equal(["system", "user", "system"], sent.Select(m => m!["role"]!.GetValue<string>()));
        Assert.Equal("The working directory is /tmp.", sent[2]!["content"]!.GetValue<string>());
    }

    [Fact]
    public async Task Messages_StopSequence_IsSentAsStopAndTheTextEndsBeforeIt()
    {
        var (client, alias) = await ToolModelAsync();
        var marker = "stop-" + Guid.NewGuid().ToString("N");
        var message = await client.Messages.Create(new MessageCreateParams
        {
            Model = alias, MaxTokens = 100, StopSequences = [" fake", "never"], Messages = [new UserMessageParam { Content = marker }],
        }, TestContext.Current.CancellationToken);

        Assert.Equal("Hello from the", string.Concat(message.Content.Select(b => b.TryPickText(out var t) ? t.Text : "")));
        // OpenAI's finish_reason "stop" does not say whether a stop string or the model ended the text: the door says end_turn.
        Assert.Equal("end_turn", message.StopReason?.Raw());
        Assert.Equal([" fake", "never"], env.Upstream.Find(marker)!.Json["stop"]!.AsArray().Select(s => s!.GetValue<string>()));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Messages_OutputLimitReached_StopReasonIsMaxTokens(bool streamed)
    {
        var (client, alias) = await ToolModelAsync();
        var ask = new MessageCreateParams { Model = alias, MaxTokens = 2, Messages = [new UserMessageParam { Content = "Say hello" }] };
        string text, stopReason;
        if (streamed)
        {
            (text, _, stopReason) = await StreamAsync(client, ask);
        }
        else
        {
            var message = await client.Messages.Create(ask, TestContext.Current.CancellationToken);
            text = string.Concat(message.Content.Select(b => b.TryPickText(out var t) ? t.Text : ""));
            stopReason = message.StopReason?.Raw()!;
            Assert.Equal(2, message.Usage.OutputTokens);
        }

        Assert.Equal("max_tokens", stopReason);
        Assert.Equal("Hello from", text);
    }

    [Fact]
    public async Task Messages_UpstreamDropsMidStream_TheStreamEndsWithAnErrorEvent()
    {
        var alias = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "drop-mid-stream");
        var (key, _) = await env.Gateway.CreateKeyAsync();
        using var http = env.Gateway.Client();
        http.DefaultRequestHeaders.Add("x-api-key", key);
        http.DefaultRequestHeaders.Add("anthropic-version", "2023-06-01");
        var response = await http.PostAsync("/v1/messages", new StringContent(
            $$"""{"model":"{{alias}}","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Say hello"}]}""",
            Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode); // the text had begun: the status was sent with it
        var body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        var events = body.Split('\n').Where(l => l.StartsWith("event: ", StringComparison.Ordinal)).Select(l => l[7..]).ToList();
        Assert.Equal("message_start", events[0]);
        Assert.Contains("content_block_delta", events);
        Assert.Equal("error", events[^1]); // never a message_stop that would pass a cut answer off as complete
        Assert.DoesNotContain("message_stop", events);
        var error = JsonNode.Parse(body.Split('\n').Last(l => l.StartsWith("data: ", StringComparison.Ordinal))[6..])!;
        Assert.Equal("error", error["type"]!.GetValue<string>());
        Assert.False(string.IsNullOrEmpty(error["error"]!["type"]!.GetValue<string>()));

        // The SDK surfaces the error event as an exception, after the text it had.
        var text = new StringBuilder();
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await foreach (var e in Client(key).Messages.CreateStreaming(new MessageCreateParams
            {
                Model = alias, MaxTokens = 100, Messages = [new UserMessageParam { Content = "Say hello" }],
            }, TestContext.Current.CancellationToken))
            {
                if (e.TryPickContentBlockDelta(out var delta) && delta.Delta.TryPickText(out var piece)) text.Append(piece.Text);
            }
        });
        Assert.StartsWith("Hello", text.ToString(), StringComparison.Ordinal);
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal("anthropic.messages", row.FrontDoor);
    }

    private static List<ToolUseBlock> ToolUses(IReadOnlyList<ContentBlock> content) =>
        [.. content.Select(b => b.TryPickToolUse(out var call) ? call : null).OfType<ToolUseBlock>()];

    private sealed record StreamedCall(string Id, string Name, JsonObject Input);

    /// <summary>Reads a streamed answer through the SDK as a client would: text from text deltas, each tool_use block from its
    /// start event (id, name) and its <c>input_json_delta</c> pieces, parsed once the block stops.</summary>
    private static async Task<(string Text, List<StreamedCall> Calls, string StopReason)> StreamAsync(AnthropicClient client, MessageCreateParams ask)
    {
        var text = new StringBuilder();
        var open = new Dictionary<long, (string Id, string Name, StringBuilder Json)>();
        var calls = new List<StreamedCall>();
        string? stopReason = null;
        var stopped = false;
        await foreach (var e in client.Messages.CreateStreaming(ask, TestContext.Current.CancellationToken))
        {
            if (e.TryPickContentBlockStart(out var start) && start.ContentBlock.TryPickToolUse(out var use))
                open[start.Index] = (use.ID, use.Name, new StringBuilder());
            if (e.TryPickContentBlockDelta(out var delta))
            {
                if (delta.Delta.TryPickText(out var piece)) text.Append(piece.Text);
                if (delta.Delta.TryPickInputJson(out var json)) open[delta.Index].Json.Append(json.PartialJson);
            }
            if (e.TryPickContentBlockStop(out var stop) && open.Remove(stop.Index, out var done))
                calls.Add(new StreamedCall(done.Id, done.Name, JsonNode.Parse(done.Json.ToString())!.AsObject()));
            if (e.TryPickDelta(out var end)) stopReason = end.Delta.StopReason?.Raw();
            stopped |= e.TryPickStop(out _);
        }
        Assert.True(stopped);
        Assert.Empty(open); // every block that started, stopped
        return (text.ToString(), calls, stopReason!);
    }
}
