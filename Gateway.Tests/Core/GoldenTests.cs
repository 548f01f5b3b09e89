using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Catalog;
using Gateway.Core.Providers;
using Gateway.Core.Providers.Anthropic;
using Gateway.Core.Providers.Gemini;
using Gateway.Core.Validation;
using Gateway.Core.Wire;

namespace Gateway.Tests.Core;

/// <summary>
/// Golden wire pairs in Golden/&lt;protocol&gt;/: an OpenAI request and the native request it must become
/// (*.openai-request.json → *.&lt;protocol&gt;-request.json), and a native answer and the OpenAI answer it must
/// become (*.&lt;protocol&gt;-response.json → *.openai-response.json). Compared as JSON, not as text.
/// </summary>
public sealed class GoldenTests
{
    private static readonly Guid RequestId = Guid.Parse("0192f0a1-b2c3-7d4e-8f9a-0b1c2d3e4f50");
    private const long Created = 1_741_569_952;

    private static string Folder(string protocol) => Path.Combine(AppContext.BaseDirectory, "Golden", protocol);

    public static TheoryData<string, string> RequestPairs() => Pairs("openai-request.json");

    public static TheoryData<string, string> ResponsePairs() => Pairs("openai-response.json");

    private static TheoryData<string, string> Pairs(string suffix)
    {
        var data = new TheoryData<string, string>();
        foreach (var protocol in new[] { "anthropic", "gemini" })
            foreach (var file in Directory.GetFiles(Folder(protocol), "*." + suffix))
                data.Add(protocol, Path.GetFileName(file)[..^(suffix.Length + 1)]);
        return data;
    }

    private static UpstreamCall Call(string protocol, byte[] openAIRequest)
    {
        var parsed = new ChatRequestParser(Microsoft.Extensions.Options.Options.Create(new Gateway.Core.GatewayOptions())).Parse(openAIRequest);
        Assert.Null(parsed.Failure);
        var provider = new ProviderInfo(Guid.Empty, "golden", protocol, new Uri("http://127.0.0.1/"), "secret", null, ProviderSettings.Default);
        var route = new ModelRoute(Guid.Empty, "golden", provider, protocol == "anthropic" ? "claude-golden" : "gemini-golden", 1m, 2m, 0.5m, 1.25m, 2m, null, null,
            DateTimeOffset.UnixEpoch);
        return new UpstreamCall(RequestId, parsed.Value!, route);
    }

    [Theory]
    [MemberData(nameof(RequestPairs))]
    public void OpenAIRequest_BecomesTheGoldenNativeRequest(string protocol, string name)
    {
        var call = Call(protocol, File.ReadAllBytes(Path.Combine(Folder(protocol), $"{name}.openai-request.json")));

        JsonNode actual = protocol == "anthropic" ? AnthropicRequestMapper.Map(call).Body : GeminiRequestMapper.Map(call);

        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder(protocol), $"{name}.{protocol}-request.json")));
        Assert.True(JsonNode.DeepEquals(expected, actual), actual.ToJsonString());
    }

    [Theory]
    [InlineData("anthropic")]
    [InlineData("gemini")]
    public void OpenAIRequest_ToolArgumentsNested62Deep_StillSerializesForTheNativeApi(string protocol)
    {
        // Arguments are a JSON string, so the request passes the 64-level read limit; native APIs nest them 5-6 levels deeper.
        var arguments = string.Concat(Enumerable.Repeat("{\\\"a\\\":", 62)) + "1" + new string('}', 62);
        var call = Call(protocol, Encoding.UTF8.GetBytes($$$"""
            {"model":"golden","messages":[{"role":"user","content":"hi"},
             {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{{{arguments}}}"}}]},
             {"role":"tool","tool_call_id":"call_1","content":"ok"}]}
            """));

        var body = protocol == "anthropic" ? AnthropicRequestMapper.Map(call).Body : GeminiRequestMapper.Map(call);

        Assert.NotEmpty(JsonSerializer.SerializeToUtf8Bytes(body, GatewayJsonContext.Wire.JsonObject));
    }

    [Theory]
    [MemberData(nameof(ResponsePairs))]
    public void NativeResponse_BecomesTheGoldenOpenAIResponse(string protocol, string name)
    {
        var call = Call(protocol, Encoding.UTF8.GetBytes("""{"model":"golden","messages":[{"role":"user","content":"hi"}]}"""));
        using var native = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Folder(protocol), $"{name}.{protocol}-response.json")));

        var result = protocol == "anthropic"
            ? AnthropicChatProvider.Translate(call, native.RootElement, null, Created)
            : GeminiChatProvider.Translate(call, native.RootElement, Created);

        Assert.Null(result.Failure);
        var actual = JsonNode.Parse(result.Value!.Body.Span);
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder(protocol), $"{name}.openai-response.json")));
        Assert.True(JsonNode.DeepEquals(expected, actual), actual!.ToJsonString());
    }
}
