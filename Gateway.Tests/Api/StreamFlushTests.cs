using System.Net;
using System.Text;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

/// <summary>
/// Each front door sends what the upstream said while the upstream is still silent: events that come together may leave in one
/// write, but none waits for an event that has not come.
/// </summary>
public sealed class StreamFlushTests(TestEnvironment env)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("/v1/chat/completions", """{"model":"ALIAS","stream":true,"messages":[{"role":"user","content":"hi"}]}""")]
    [InlineData("/v1/messages", """{"model":"ALIAS","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}""")]
    [InlineData("/v1/responses", """{"model":"ALIAS","input":"hi","stream":true}""")]
    public async Task EachFrontDoor_SendsTheFirstWords_WhileTheUpstreamSaysNothingMore(string path, string body)
    {
        // The fake sends its role chunk and "Hello", then nothing until the request ends; the call's own deadline is far off, so
        // the stream does not end (and flush) meanwhile.
        var alias = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "stall-after-first", timeoutMs: 600_000);
        var (key, _) = await env.Gateway.CreateKeyAsync();
        using var http = env.Gateway.Client(key);
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(body.Replace("ALIAS", alias, StringComparison.Ordinal), Encoding.UTF8, "application/json"),
        };

        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Ct));
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        bound.CancelAfter(TimeSpan.FromSeconds(30)); // a door that held the words back would wait here forever
        var seen = new StringBuilder();
        while (await reader.ReadLineAsync(bound.Token) is { } line)
        {
            seen.AppendLine(line);
            if (line.Contains("Hello", StringComparison.Ordinal)) break;
        }
        Assert.Contains("Hello", seen.ToString(), StringComparison.Ordinal);
    }
}
