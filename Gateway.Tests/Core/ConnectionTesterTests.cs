using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Catalog;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Core;

/// <summary>"Test connection" against the fake providers over real HTTP: the wire format of each protocol's list-models call.</summary>
public sealed class ConnectionTesterTests(TestEnvironment env)
{
    private ConnectionTester Tester => env.Gateway.Services.GetRequiredService<ConnectionTester>();

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 11)];

    /// <summary>Adds a provider through the admin API (a secret is stored encrypted, a reference as it is).</summary>
    private async Task<string> AddProviderAsync(string protocol, string baseUrl, string? secret = null, string? secretRef = null)
    {
        var name = Unique("conn");
        using var admin = env.Gateway.Admin();
        var response = await admin.PostAsJsonAsync("/admin/providers", new JsonObject
        {
            ["name"] = name, ["protocol"] = protocol, ["base_url"] = baseUrl, ["secret"] = secret, ["secret_ref"] = secretRef,
        });
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return name;
    }

    [Fact]
    public async Task TestConnection_OpenAIWithSecretReference_ListsModelsWithTheBearerKey()
    {
        var variable = "GATEWAY_SECRET_CONN_TEST_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        Environment.SetEnvironmentVariable(variable, "sk-from-env-for-test-connection");
        var name = await AddProviderAsync("openai", env.Upstream.BaseUrl, secretRef: $"env:{variable}");

        var check = await Tester.TestAsync(name, TestContext.Current.CancellationToken);

        Assert.True(check.Ok, check.Message);
        Assert.Contains("gpt-4o-mini", check.Models);
        Assert.StartsWith("OK", check.Message, StringComparison.Ordinal);
        Assert.Contains(env.Upstream.Requests, r => r.Path == "/v1/models" && r.Authorization == "Bearer sk-from-env-for-test-connection");
    }

    [Fact]
    public async Task TestConnection_OpenAIRefusesTheKey_ReportsStatusAndMessageButNeverTheSecret()
    {
        var name = await AddProviderAsync("openai", env.Upstream.BaseUrl, secret: FakeOpenAI.RejectedKey);

        var check = await Tester.TestAsync(name, TestContext.Current.CancellationToken);

        Assert.False(check.Ok);
        Assert.Equal(401, check.Status);
        Assert.Contains("Incorrect API key provided", check.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(FakeOpenAI.RejectedKey, check.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(FakeOpenAI.RejectedKey[^4..], check.Message, StringComparison.Ordinal); // not even OpenAI's masked echo
    }

    [Fact]
    public async Task TestConnection_AnthropicWithItsKey_SendsApiKeyAndVersionHeaders()
    {
        var name = await AddProviderAsync("anthropic", env.Anthropic.BaseUrl, secret: FakeAnthropic.ApiKey);

        var check = await Tester.TestAsync(name, TestContext.Current.CancellationToken);

        Assert.True(check.Ok, check.Message);
        Assert.Equal(["claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"], check.Models);
        Assert.Contains(env.Anthropic.Requests, r => r.Path == "/v1/models" && r.Headers.GetValueOrDefault("anthropic-version") == "2023-06-01");
    }

    [Fact]
    public async Task TestConnection_AnthropicWithAWrongKey_Reports401InAnthropicsWords()
    {
        var name = await AddProviderAsync("anthropic", env.Anthropic.BaseUrl, secret: "sk-ant-wrong-key-for-test");

        var check = await Tester.TestAsync(name, TestContext.Current.CancellationToken);

        Assert.False(check.Ok);
        Assert.Equal((401, "HTTP 401: invalid x-api-key"), (check.Status, check.Message));
    }

    [Fact]
    public async Task TestConnection_GeminiWithItsKey_ListsModelsWithoutThePrefix()
    {
        var name = await AddProviderAsync("gemini", env.Gemini.BaseUrl, secret: FakeGemini.ApiKey);

        var check = await Tester.TestAsync(name, TestContext.Current.CancellationToken);

        Assert.True(check.Ok, check.Message);
        Assert.Equal(["gemini-2.5-flash", "gemini-embedding-001"], check.Models);
        Assert.Contains(env.Gemini.Requests, r => r.Path == "/v1beta/models" && r.Authorization == FakeGemini.ApiKey);
    }

    [Fact]
    public async Task TestConnection_GeminiWithAWrongKey_ReportsApiKeyInvalid()
    {
        var name = await AddProviderAsync("gemini", env.Gemini.BaseUrl, secret: "AIza-wrong-key-for-test");

        var check = await Tester.TestAsync(name, TestContext.Current.CancellationToken);

        Assert.False(check.Ok);
        Assert.Equal(400, check.Status);
        Assert.Contains("API key not valid", check.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TestConnection_SecretReferenceNotSet_SaysSoWithoutCalling()
    {
        var variable = "GATEWAY_SECRET_CONN_UNSET_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var name = await AddProviderAsync("openai", env.Upstream.BaseUrl, secretRef: $"env:{variable}");

        var check = await Tester.TestAsync(name, TestContext.Current.CancellationToken);

        Assert.False(check.Ok);
        Assert.Null(check.Status);
        Assert.Contains($"environment variable {variable} is not set", check.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TestConnection_NothingListens_ReportsCouldNotConnect()
    {
        var name = await AddProviderAsync("openai", "http://127.0.0.1:1/v1", secret: "sk-anything");

        var check = await Tester.TestAsync(name, TestContext.Current.CancellationToken);

        Assert.False(check.Ok);
        Assert.Equal("Failed: could not connect", check.Message);
    }

    [Fact]
    public async Task TestConnection_BaseUrlMissingItsVersionPath_Reports404()
    {
        var name = await AddProviderAsync("openai", env.Upstream.BaseUrl[..^"/v1".Length], secret: "sk-anything");

        var check = await Tester.TestAsync(name, TestContext.Current.CancellationToken);

        Assert.False(check.Ok);
        Assert.Equal(404, check.Status);
    }

    [Fact]
    public async Task TestConnection_Mock_IsOkOffline()
    {
        var name = await AddProviderAsync("mock", "mock://local");

        var check = await Tester.TestAsync(name, TestContext.Current.CancellationToken);

        Assert.True(check.Ok, check.Message);
    }
}
