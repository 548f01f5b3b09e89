using System.Net;
using System.Text;
using Gateway.Core.Providers;

namespace Gateway.Tests.Core;

/// <summary>How long a provider asks the gateway to wait, in each provider's way of saying it, and whatever a hostile one says.</summary>
public sealed class WaitHintTests
{
    private static TimeSpan? Hint((string Name, string Value)[] headers, string body = "{}")
    {
        using var response = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        foreach (var (name, value) in headers) response.Headers.TryAddWithoutValidation(name, value);
        return UpstreamHttp.WaitHint(response, Encoding.UTF8.GetBytes(body));
    }

    [Theory]
    [InlineData("retry-after-ms", "1500", 1.5)] // OpenAI, Azure
    [InlineData("retry-after", "7", 7)]
    public void Headers_GiveTheWait(string name, string value, double seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), Hint([(name, value)]));

    [Fact]
    public void AnthropicReset_OfAnExhaustedLimit_GivesTheWait()
    {
        // https://docs.anthropic.com/en/api/rate-limits#response-headers: RFC 3339 reset times per limit.
        var reset = TimeProvider.System.GetUtcNow().AddSeconds(30).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        var wait = Hint([("anthropic-ratelimit-requests-remaining", "0"), ("anthropic-ratelimit-requests-reset", reset),
            ("anthropic-ratelimit-tokens-remaining", "5000"), ("anthropic-ratelimit-tokens-reset", reset)]);
        Assert.InRange(wait!.Value.TotalSeconds, 20, 31);
    }

    [Fact]
    public void GeminiRetryInfo_GivesTheWait() => Assert.Equal(TimeSpan.FromSeconds(37), Hint([], """
        {"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[
          {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[]},
          {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}
        """));

    [Theory]
    [InlineData("retry-after-ms", "Infinity")]
    [InlineData("retry-after-ms", "NaN")]
    [InlineData("retry-after-ms", "1e300")]
    [InlineData("retry-after-ms", "-5")]
    [InlineData("retry-after", "99999999999")]
    public void HostileHeaders_NeverThrow_AndGiveAtMostADay(string name, string value)
    {
        var wait = Hint([(name, value)]);
        Assert.True(wait is null || wait <= TimeSpan.FromDays(1), wait?.ToString());
    }

    [Theory]
    [InlineData("1e300s")]
    [InlineData("-3s")]
    [InlineData("soon")]
    public void HostileRetryDelay_NeverThrows(string delay)
    {
        var wait = Hint([], $$$"""{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{{{delay}}}"}]}}""");
        Assert.True(wait is null || wait <= TimeSpan.FromDays(1), wait?.ToString());
    }
}
