using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

/// <summary>
/// A capped key's refusal says what happened: a cap with nothing left is "reached"; a request whose worst case is more than
/// what is left gets the numbers and the max_tokens that would fit. Both stay 429 insufficient_quota.
/// </summary>
public sealed partial class HardCapMessageTests(TestEnvironment env)
{
    private static string Ask(int maxTokens) =>
        $$"""{"model":"mock","max_tokens":{{maxTokens}},"messages":[{"role":"user","content":"hi"}]}""";

    private async Task<HttpClient> CappedClientAsync(string cap)
    {
        var (key, _) = await env.Gateway.CreateKeyAsync(hardCapUsd: decimal.Parse(cap, CultureInfo.InvariantCulture));
        return env.Gateway.Client(key);
    }

    private static async Task<string> RefusalAsync(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!;
        Assert.Equal(("insufficient_quota", "insufficient_quota"), (error["type"]!.GetValue<string>(), error["code"]!.GetValue<string>()));
        return error["message"]!.GetValue<string>();
    }

    [Fact]
    public async Task HardCap_RequestLargerThanWhatIsLeft_SaysTheWorstCaseAndWhichMaxTokensFits()
    {
        using var client = await CappedClientAsync("0.01");

        var message = await RefusalAsync(await client.PostAsync("/v1/chat/completions", Json(Ask(10_000))));

        // mock: $1 / $2 per million; 10,000 output tokens alone are $0.02.
        Assert.Matches(@"^This request's worst case is \$0\.0200\d\d \(\d+ prompt tokens \+ 10,000 output tokens at mock's prices of \$1\.00/\$2\.00 per million\), "
            + @"and the key has room for \$0\.01 in one request under its \$0\.01 hard cap today; a max_tokens of at most [\d,]+ would fit\.", message);
        Assert.DoesNotContain("is reached", message, StringComparison.Ordinal);
        var fits = int.Parse(FitsPattern().Match(message).Groups[1].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
        Assert.InRange(fits, 4_900, 4_999);

        Assert.Equal(HttpStatusCode.TooManyRequests, (await client.PostAsync("/v1/chat/completions", Json(Ask(fits + 1)))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Json(Ask(fits)))).StatusCode);
    }

    [Fact]
    public async Task HardCap_NothingLeft_SaysTheCapIsReached()
    {
        using var client = await CappedClientAsync("0");

        var message = await RefusalAsync(await client.PostAsync("/v1/chat/completions", Json(Ask(10))));

        Assert.StartsWith("You exceeded this key's budget: its hard cap for today ($0.00) is reached", message, StringComparison.Ordinal);
        Assert.DoesNotContain("worst case", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HardCap_PromptAloneCostsMoreThanWhatIsLeft_SaysToShortenIt()
    {
        using var client = await CappedClientAsync("0.000001");

        var message = await RefusalAsync(await client.PostAsync("/v1/chat/completions", Json(Ask(10))));

        Assert.Contains("the key has room for $0.000001 in one request under its $0.000001 hard cap today; even its prompt alone costs more than that", message,
            StringComparison.Ordinal);
    }

    [GeneratedRegex(@"max_tokens of at most ([\d,]+) would fit")]
    private static partial Regex FitsPattern();
}
