using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

/// <summary>
/// The Responses door (<c>/v1/responses</c>) in front of the Anthropic and Gemini fakes: answers, streams and function-call round
/// trips come back in the Responses format whatever the protocol behind, and Gemini 3's thought signature survives the round trip
/// in the call id the client sends back.
/// </summary>
public sealed class ResponsesProvidersTests(TestEnvironment env)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const string WeatherTool = """[{"type":"function","name":"get_weather","description":"Weather in a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]""";

    private static async Task<JsonObject> PostAsync(HttpClient http, string body)
    {
        var response = await http.PostAsync("/v1/responses", Json(body), Ct);
        var json = (await response.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        Assert.True(response.StatusCode == HttpStatusCode.OK, json.ToJsonString());
        return json;
    }

    private static string OutputText(JsonObject response) => string.Concat(response["output"]!.AsArray()
        .Where(i => i!["type"]!.GetValue<string>() == "message")
        .SelectMany(i => i!["content"]!.AsArray()).Select(c => c!["text"]?.GetValue<string>() ?? ""));

    [Fact]
    public async Task Responses_AnthropicModel_AnswersPlainAndStreamedInTheResponsesFormat()
    {
        var alias = await env.Gateway.AddModelAsync(env.Anthropic.BaseUrl, "claude-haiku-4-5", protocol: "anthropic", secret: FakeAnthropic.ApiKey);
        var (key, _) = await env.Gateway.CreateKeyAsync();
        using var http = env.Gateway.Client(key);

        var plain = await PostAsync(http, $$"""{"model":"{{alias}}","input":"Say hello","store":false}""");
        Assert.Equal(("completed", "Hello from Claude."), (plain["status"]!.GetValue<string>(), OutputText(plain)));
        Assert.True(plain["usage"]!["output_tokens"]!.GetValue<int>() > 0);

        var streamed = await http.PostAsync("/v1/responses", Json($$"""{"model":"{{alias}}","input":"Say hello","stream":true,"store":false}"""), Ct);
        var events = (await streamed.Content.ReadAsStringAsync(Ct)).Split('\n')
            .Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => JsonNode.Parse(l[6..])!.AsObject()).ToList();
        Assert.Equal("Hello from Claude.", string.Concat(events.Where(e => e["type"]!.GetValue<string>() == "response.output_text.delta")
            .Select(e => e["delta"]!.GetValue<string>())));
        Assert.Equal("response.completed", events[^1]["type"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("anthropic")]
    [InlineData("gemini")]
    public async Task Responses_FunctionCallRoundTrip_ThroughAnthropicAndGemini3(string protocol)
    {
        var alias = protocol == "anthropic"
            ? await env.Gateway.AddModelAsync(env.Anthropic.BaseUrl, "claude-sonnet-4-5", protocol: "anthropic", secret: FakeAnthropic.ApiKey)
            : await env.Gateway.AddModelAsync(env.Gemini.BaseUrl, "gemini-3-pro-preview", protocol: "gemini", secret: FakeGemini.ApiKey);
        var (key, _) = await env.Gateway.CreateKeyAsync();
        using var http = env.Gateway.Client(key);

        var first = await PostAsync(http, $$"""{"model":"{{alias}}","input":"Weather in Paris?","tools":{{WeatherTool}},"store":false}""");
        var call = first["output"]!.AsArray().Single(i => i!["type"]!.GetValue<string>() == "function_call")!;
        Assert.Equal("get_weather", call["name"]!.GetValue<string>());
        var (callId, arguments) = (call["call_id"]!.GetValue<string>(), call["arguments"]!.GetValue<string>());

        // The client sends the call back as it got it (Gemini 3 refuses a function call without the signature it came with) and
        // its output.
        var second = await PostAsync(http, $$"""
            {"model":"{{alias}}","tools":{{WeatherTool}},"store":false,
             "input":[{"role":"user","content":"Weather in Paris?"},
                      {"type":"function_call","call_id":"{{callId}}","name":"get_weather","arguments":{{JsonValue.Create(arguments)!.ToJsonString()}}},
                      {"type":"function_call_output","call_id":"{{callId}}","output":"21 C, sunny"}]}
            """);
        Assert.Equal(protocol == "anthropic" ? FakeAnthropic.Answer : FakeGemini.Answer, OutputText(second));
    }
}
