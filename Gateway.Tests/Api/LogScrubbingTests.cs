using System.Text.Json.Nodes;
using Gateway.Core.Logging;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

/// <summary>Prompts are not logged by default; when they are, personal data and secrets are redacted first; secrets never show anywhere.</summary>
public sealed class LogScrubbingTests(TestEnvironment env)
{
    private const string Sensitive =
        "Mail jane.doe@example.com or call +1 415-555-0132. Card 4111 1111 1111 1111, SSN 123-45-6789, NI AB 12 34 56 C, key sk-proj-abcdefghijklmnopqrstuvwx.";

    private static readonly string[] RawValues =
        ["jane.doe@example.com", "415-555-0132", "4111 1111 1111 1111", "123-45-6789", "AB 12 34 56 C", "sk-proj-abcdefghijklmnopqrstuvwx"];

    [Theory]
    [InlineData("write to jane.doe@example.com today", "write to [REDACTED:email] today")]
    [InlineData("call +44 20 7946 0958 now", "call [REDACTED:phone] now")]
    [InlineData("card 4111-1111-1111-1111 ok", "card [REDACTED:card] ok")]
    [InlineData("ssn 123-45-6789", "ssn [REDACTED:national-id]")]
    [InlineData("key sk-ant-api03-abcdefghijklmnopqrstuv and gw-ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", "key [REDACTED:key] and [REDACTED:key]")]
    [InlineData("Authorization: Bearer abcdefghijklmnop.qrstuvwx", "Authorization: [REDACTED:key]")]
    [InlineData("meeting on 2026-11-24 at 10:30, room 12", "meeting on 2026-11-24 at 10:30, room 12")]
    [InlineData("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U here",
        "jwt [REDACTED:token] here")]
    [InlineData("my password: hunter2", "my password: [REDACTED:secret]")]
    [InlineData("the password is Xk9#mP2$vL5@nQ8&wR3*tY6!zB4^cF7 ok", "the password is [REDACTED:secret] ok")]
    [InlineData("""{"token": "abc123def", "api_key":"zz-1"}""", """{"token": "[REDACTED:secret]", "api_key":"[REDACTED:secret]"}""")]
    [InlineData("DB_SECRET=s3cr3t!", "DB_SECRET=[REDACTED:secret]")]
    [InlineData("a token of thanks", "a token of thanks")]
    public void Redactor_RemovesPersonalDataAndSecrets_KeepsOrdinaryText(string text, string expected) =>
        Assert.Equal(expected, Redactor.Redact(text));

    [Fact]
    public void Redactor_DigitRunFailingTheLuhnCheck_IsNotCalledACard()
    {
        Assert.True(Redactor.Luhn("4111 1111 1111 1111"));
        Assert.False(Redactor.Luhn("4111 1111 1111 1112"));
        Assert.DoesNotContain("[REDACTED:card]", Redactor.Redact("order 4111 1111 1111 1112"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task BodyLoggingOn_PromptAndAnswerAreLoggedRedacted()
    {
        await using var host = new GatewayHost(env.Postgres.ConnectionString,
            new() { ["Gateway:LogBodies"] = "true", ["Logging:LogLevel:Default"] = "Trace" });
        var (key, _) = await host.CreateKeyAsync();
        using var client = host.Client(key);

        var response = await client.PostAsync("/v1/chat/completions",
            Json(new JsonObject { ["model"] = "mock", ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = Sensitive }) }.ToJsonString()));

        response.EnsureSuccessStatusCode();
        var lines = host.Logs.Lines.ToArray();
        var prompt = Assert.Single(lines, l => l.Contains("prompt (redacted)", StringComparison.Ordinal));
        foreach (var kind in (string[])["email", "phone", "card", "national-id", "key"]) Assert.Contains($"[REDACTED:{kind}]", prompt, StringComparison.Ordinal);
        Assert.Single(lines, l => l.Contains("answer (redacted)", StringComparison.Ordinal));
        var leaked = lines.Where(l => RawValues.Any(v => l.Contains(v, StringComparison.Ordinal))).ToList();
        Assert.True(leaked.Count == 0, string.Join("\n", leaked));
        Assert.All(lines, l => Assert.DoesNotContain(key, l, StringComparison.Ordinal));
    }

    [Fact]
    public async Task BodyLoggingOn_APassedThroughAnswerIsLoggedWithItsText()
    {
        await using var host = new GatewayHost(env.Postgres.ConnectionString,
            new() { ["Gateway:LogBodies"] = "true", ["Logging:LogLevel:Default"] = "Trace" });
        var alias = await host.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var (key, _) = await host.CreateKeyAsync();
        using var client = host.Client(key);

        (await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"hi"}]}"""))).EnsureSuccessStatusCode();

        var answer = Assert.Single(host.Logs.Lines, l => l.Contains("answer (redacted)", StringComparison.Ordinal));
        Assert.Contains(FakeOpenAI.Answer, answer, StringComparison.Ordinal); // it was logged as empty
    }

    [Fact]
    public async Task BodyLoggingOn_AStreamedAnswerIsLoggedWithItsText()
    {
        await using var host = new GatewayHost(env.Postgres.ConnectionString,
            new() { ["Gateway:LogBodies"] = "true", ["Logging:LogLevel:Default"] = "Trace" });
        var alias = await host.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini");
        var (key, _) = await host.CreateKeyAsync();
        using var client = host.Client(key);

        var body = await (await client.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"{{alias}}","stream":true,"messages":[{"role":"user","content":"hi"}]}"""))).EnsureSuccessStatusCode().Content.ReadAsStringAsync();

        Assert.EndsWith("data: [DONE]\n\n", body, StringComparison.Ordinal);
        var answer = Assert.Single(host.Logs.Lines, l => l.Contains("answer (redacted)", StringComparison.Ordinal));
        Assert.Contains(FakeOpenAI.Answer, answer, StringComparison.Ordinal); // the joined deltas, not the builder's type name
    }

    [Fact]
    public async Task ByDefault_NoPromptOrAnswerTextInAnyLogLine_EvenAtTraceLevel()
    {
        await using var host = new GatewayHost(env.Postgres.ConnectionString, new() { ["Logging:LogLevel:Default"] = "Trace" });
        var (key, _) = await host.CreateKeyAsync();
        using var client = host.Client(key);
        var marker = "secret-plan-" + Guid.NewGuid().ToString("N");

        (await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"mock","messages":[{"role":"user","content":"{{marker}}"}]}"""))).EnsureSuccessStatusCode();
        await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"mock","messages":[{"role":"user","content":"{{marker}}"}],"temperature":"hot"}"""));

        Assert.NotEmpty(host.Logs.Lines);
        Assert.DoesNotContain(host.Logs.Lines, l => l.Contains(marker, StringComparison.Ordinal));
    }

    [Fact]
    public async Task ProviderSecretsAndGatewayKeys_NeverInLogsErrorBodiesOrMetrics()
    {
        await using var host = new GatewayHost(env.Postgres.ConnectionString, new() { ["Logging:LogLevel:Default"] = "Trace" });
        // A literal secret the upstream refuses (OpenAI echoes part of a wrong key in its error) and one it accepts.
        var refused = await host.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o", secret: FakeOpenAI.RejectedKey);
        const string Accepted = "sk-accepted-secret-9f8e7d6c5b4a";
        var accepted = await host.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", secret: Accepted);
        var (key, _) = await host.CreateKeyAsync();
        using var client = host.Client(key);

        var bodies = new List<string>();
        foreach (var (model, stream) in new[] { (refused, false), (refused, true), (accepted, false), (accepted, true) })
        {
            var response = await client.PostAsync("/v1/chat/completions",
                Json($$"""{"model":"{{model}}","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"hi"}]}"""));
            bodies.Add(await response.Content.ReadAsStringAsync());
        }
        using var admin = host.Admin();
        bodies.Add(await admin.GetStringAsync("/admin/providers"));
        bodies.Add(await host.Client().GetStringAsync("/metrics"));
        bodies.Add(await host.Client().GetStringAsync("/health/upstreams"));

        string[] secrets = [FakeOpenAI.RejectedKey, FakeOpenAI.RejectedKey[^4..] + ".", Accepted, key, GatewayHost.MasterKey];
        foreach (var text in bodies.Concat(host.Logs.Lines))
            Assert.DoesNotContain(secrets, s => text.Contains(s, StringComparison.Ordinal));
        Assert.Contains("401", bodies[0], StringComparison.Ordinal);
    }
}
