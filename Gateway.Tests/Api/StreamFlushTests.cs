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

    public static TheoryData<string, string> Doors => new()
    {
        { "/v1/chat/completions", """{"model":"ALIAS","stream":true,"messages":[{"role":"user","content":"hi"}]}""" },
        { "/v1/messages", """{"model":"ALIAS","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}""" },
        { "/v1/responses", """{"model":"ALIAS","input":"hi","stream":true}""" },
    };

    [Theory]
    [MemberData(nameof(Doors))]
    public async Task EachFrontDoor_SendsTheFirstWords_WhileTheUpstreamSaysNothingMore(string path, string body)
    {
        var (key, _) = await env.Gateway.CreateKeyAsync();
        using var http = env.Gateway.Client(key);

        var (response, seen) = await ReadUntilHelloAsync(http, path, body);
        response.Dispose();

        Assert.Contains("Hello", seen, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Doors))]
    public async Task EachFrontDoor_AClientThatLeavesWhileTheUpstreamIsSilent_LeavesOneRow_MarkedAsLeft(string path, string body)
    {
        var (key, keyId) = await env.Gateway.CreateKeyAsync();
        // No draining of an abandoned answer (HttpClient would read on to reuse the connection): leaving closes it.
        using var http = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = env.Gateway.BaseAddress };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);

        var (response, _) = await ReadUntilHelloAsync(http, path, body);
        var requestId = Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single());
        response.Dispose(); // the client leaves while the gateway waits on the silent upstream

        Assert.Equal(499, (int)(await env.WaitForUsageAsync(requestId)).Status);
        Assert.Single(await env.UsageRowsForKeyAsync(keyId));
    }

    // Streams from a model whose fake sends its role chunk and "Hello", then nothing until the request ends; the call's own
    // deadline is far off, so the stream does not end (and flush) meanwhile. Reads until "Hello" has arrived.
    private async Task<(HttpResponseMessage Response, string Seen)> ReadUntilHelloAsync(HttpClient http, string path, string body)
    {
        var alias = await env.Gateway.AddModelAsync(env.Upstream.BaseUrl, "stall-after-first", timeoutMs: 600_000);
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(body.Replace("ALIAS", alias, StringComparison.Ordinal), Encoding.UTF8, "application/json"),
        };
        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Ct));
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        bound.CancelAfter(TimeSpan.FromSeconds(30)); // a door that held the words back would wait here forever
        var seen = new StringBuilder();
        while (await reader.ReadLineAsync(bound.Token) is { } line)
        {
            seen.AppendLine(line);
            if (line.Contains("Hello", StringComparison.Ordinal)) break;
        }
        return (response, seen.ToString());
    }
}
