using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

/// <summary>A body that is not JSON is refused with its real cause and where it was found, never a guess from the parser's wording.</summary>
public sealed class JsonSyntaxErrorTests(TestEnvironment env)
{
    private async Task<JsonObject> ErrorOfAsync(string body, string path = "/v1/chat/completions")
    {
        var (key, _) = await env.Gateway.CreateKeyAsync();
        using var client = env.Gateway.Client(key);
        var response = await client.PostAsync(path, Json(body));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!.AsObject();
        Assert.Equal("invalid_json", error["code"]!.GetValue<string>());
        return error;
    }

    [Theory]
    [InlineData("{\"model\": \"mock\"", "(line 1, byte 17)")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}""", "(line 1, byte ")]
    [InlineData("{\"model\":\"mock\",\n \"messages\": [", "(line 2, byte ")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi""", "(line 1, byte ")]
    [InlineData("""{"model":"mock","stream":tr""", "(line 1, byte ")]
    public async Task ChatCompletion_TruncatedBody_SaysItEndsTooSoonAndWhere(string body, string where)
    {
        var message = (await ErrorOfAsync(body))["message"]!.GetValue<string>();

        Assert.StartsWith("The request body is not valid JSON: it ends before the JSON is complete (", message, StringComparison.Ordinal);
        Assert.Contains(where, message, StringComparison.Ordinal);
        Assert.DoesNotContain("deep", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Embeddings_TruncatedBody_SaysItEndsTooSoon()
    {
        var message = (await ErrorOfAsync("""{"model":"mock","input":["a",""", "/v1/embeddings"))["message"]!.GetValue<string>();

        Assert.Contains("ends before the JSON is complete", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"model":"mock",,"messages":[]}""", "(line 1, byte 17)")]
    [InlineData("""{"model":"mock","messages":[{"role":"user","content":"hi"}]} x""", "(line 1, byte 62)")]
    [InlineData("""{"model":"mock","stream":trux}""", "(line 1, byte ")]
    public async Task ChatCompletion_BadSyntax_NamesThePositionNotTruncationOrDepth(string body, string where)
    {
        var message = (await ErrorOfAsync(body))["message"]!.GetValue<string>();

        Assert.Contains(where, message, StringComparison.Ordinal);
        Assert.DoesNotContain("ends before", message, StringComparison.Ordinal);
        Assert.DoesNotContain("deep", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ChatCompletion_OverDeepAndCutShort_IsStillTooDeep()
    {
        // The parser meets the 65th level before the missing end: the depth is the first thing wrong.
        var message = (await ErrorOfAsync($$"""{"model":"mock","metadata":{{new string('[', 100)}}"""))["message"]!.GetValue<string>();

        Assert.Equal("The JSON body is nested too deeply: at most 64 levels of objects and arrays.", message);
    }
}
