using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;
using Npgsql;

namespace Gateway.Tests.Api;

/// <summary>
/// The admin API's door under attack: made-up tokens are turned away from memory (no database round trip, no 5xx, chat
/// unharmed), an address that keeps failing is refused, and a token issued or revoked on one instance counts on another.
/// </summary>
public sealed class AdminAuthTests(TestEnvironment env)
{
    private const string Chat = """{"model":"mock","messages":[{"role":"user","content":"hi"}]}""";

    private static string BogusToken() => "gwa-" + Convert.ToBase64String(Guid.NewGuid().ToByteArray()).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static string Setting(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static async Task<string> ErrorCodeAsync(HttpResponseMessage response) =>
        (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["code"]!.GetValue<string>();

    /// <summary>Every command Npgsql runs on one database (the constructor's <c>database</c>) in this process while it listens (its tracing), by SQL text.</summary>
    private sealed class DatabaseCommands : IDisposable
    {
        private readonly ActivityListener _listener;

        public ConcurrentQueue<string> Texts { get; } = new();

        public DatabaseCommands(string database)
        {
            _listener = new ActivityListener
            {
                ShouldListenTo = source => source.Name == "Npgsql",
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
                ActivityStopped = activity =>
                {
                    if (activity.GetTagItem("db.namespace") as string == database)
                        Texts.Enqueue(activity.GetTagItem("db.query.text") as string ?? activity.DisplayName);
                },
            };
            ActivitySource.AddActivityListener(_listener);
        }

        public void Dispose() => _listener.Dispose();
    }

    [Fact]
    public async Task AdminRoute_SpelledInAnyCase_WithAnyBody_IsRefusedWithoutTheKey()
    {
        // A host of its own: the refusals count as failed authentications of this address, which the shared host's other
        // tests would then meet as 429s.
        await using var host = new GatewayHost(env.Postgres.ConnectionString);
        using var stranger = host.Client(BogusToken());
        using var admin = host.Admin();
        // Routing ignores case, so the guard must too; and it runs before a handler reads the body (none is sent).
        foreach (var (method, path) in ((string, string)[])[("GET", "/ADMIN/keys"), ("GET", "/Admin/Providers"), ("POST", "/admin/KEYS"),
                     ("POST", "/admin/routes/test")])
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), path);
            using var response = await stranger.SendAsync(request, HttpCompletionOption.ResponseContentRead);
            Assert.Equal((path, HttpStatusCode.Unauthorized, "invalid_master_key"), (path, response.StatusCode, await ErrorCodeAsync(response)));

            using var withKey = new HttpRequestMessage(new HttpMethod(method), path);
            using var answer = await admin.SendAsync(withKey, HttpCompletionOption.ResponseContentRead);
            Assert.True(answer.StatusCode is not (HttpStatusCode.Unauthorized or HttpStatusCode.NotFound), $"{method} {path}: {answer.StatusCode}");
        }
    }

    [Fact]
    public async Task FiveHundredConcurrentBogusTokens_NoServerError_NoDatabaseQuery_AndChatIsStillServed()
    {
        // A database of its own, so the commands counted are this host's only.
        var connectionString = await env.Postgres.CreateDatabaseAsync();
        await using var host = new GatewayHost(connectionString);
        var (key, _) = await host.CreateKeyAsync();
        using var chat = host.Client(key);
        using var attacker = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 500 }) { BaseAddress = host.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        using var commands = new DatabaseCommands(new NpgsqlConnectionStringBuilder(connectionString).Database!);

        var flood = Task.WhenAll(Enumerable.Range(0, 500).Select(async i =>
        {
            using var request = new HttpRequestMessage(i % 2 == 0 ? HttpMethod.Get : HttpMethod.Post, i % 2 == 0 ? "/admin/keys" : "/admin/providers");
            request.Headers.Authorization = new("Bearer", BogusToken());
            using var response = await attacker.SendAsync(request, HttpCompletionOption.ResponseContentRead);
            return (response.StatusCode, Code: await ErrorCodeAsync(response));
        }));
        var chats = new List<HttpStatusCode>();
        do
        {
            using var answer = await chat.PostAsync("/v1/chat/completions", Json(Chat));
            chats.Add(answer.StatusCode);
        }
        while (!flood.IsCompleted);
        var answers = await flood;
        var tokenQueries = commands.Texts.Count(t => t.Contains("admin_tokens", StringComparison.Ordinal));
        var allCommands = commands.Texts.Count;

        Assert.Equal(0, tokenQueries);
        // Background work (the usage writer storing the chats) runs commands; a query per bogus token would be 500 more.
        Assert.True(allCommands < 500, $"{allCommands} commands during the flood");
        Assert.All(answers, a => Assert.True(a.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.TooManyRequests, a.ToString()));
        Assert.Equal(10, answers.Count(a => a.Code == "invalid_master_key")); // Gateway:AdminAuthFailuresPerAddress, then refused
        Assert.All(answers.Where(a => a.StatusCode == HttpStatusCode.TooManyRequests), a => Assert.Equal("too_many_failed_authentications", a.Code));
        Assert.All(chats, s => Assert.Equal(HttpStatusCode.OK, s));
    }

    [Fact]
    public async Task RepeatedFailures_FromOneAddress_Are429_EvenWithTheMasterKey_ForgedForwardedForDoesNotHelp_OtherAddressesUnaffected()
    {
        await using var host = new GatewayHost(env.Postgres.ConnectionString, new() { ["Gateway:AdminAuthFailuresPerAddress"] = "3" });
        using var attacker = LoopbackClients.From("127.0.0.2", host.BaseAddress);
        using var admin = LoopbackClients.From("127.0.0.3", host.BaseAddress);
        admin.DefaultRequestHeaders.Authorization = new("Bearer", GatewayHost.MasterKey);

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 6; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/admin/keys");
            request.Headers.Authorization = new("Bearer", "guess-" + i);
            request.Headers.Add("X-Forwarded-For", $"10.0.0.{i}"); // ignored: no Gateway:TrustedProxies
            using var response = await attacker.SendAsync(request, HttpCompletionOption.ResponseContentRead);
            statuses.Add(response.StatusCode);
        }
        using var withMasterKey = new HttpRequestMessage(HttpMethod.Get, "/admin/keys");
        withMasterKey.Headers.Authorization = new("Bearer", GatewayHost.MasterKey);
        using var refused = await attacker.SendAsync(withMasterKey, HttpCompletionOption.ResponseContentRead);
        using var elsewhere = await admin.GetAsync("/admin/keys");

        Assert.Equal([.. Enumerable.Repeat(HttpStatusCode.Unauthorized, 3), .. Enumerable.Repeat(HttpStatusCode.TooManyRequests, 3)], statuses);
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("too_many_failed_authentications", await ErrorCodeAsync(refused));
        Assert.True(refused.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        Assert.Equal(HttpStatusCode.OK, elsewhere.StatusCode);
    }

    [Fact]
    public async Task TrustedProxy_ItsForwardedForIsTheClientAddress()
    {
        await using var host = new GatewayHost(env.Postgres.ConnectionString, new()
        {
            ["Gateway:AdminAuthFailuresPerAddress"] = "2",
            ["Gateway:TrustedProxies:0"] = "127.0.0.0/8",
        });
        using var proxy = host.Client();

        async Task<HttpStatusCode> GuessAsync(string client)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/admin/keys");
            request.Headers.Authorization = new("Bearer", BogusToken());
            request.Headers.Add("X-Forwarded-For", client);
            using var response = await proxy.SendAsync(request, HttpCompletionOption.ResponseContentRead);
            return response.StatusCode;
        }

        var first = new[] { await GuessAsync("203.0.113.7"), await GuessAsync("203.0.113.7"), await GuessAsync("203.0.113.7") };
        var second = await GuessAsync("203.0.113.8");

        Assert.Equal([HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, HttpStatusCode.TooManyRequests], first);
        Assert.Equal(HttpStatusCode.Unauthorized, second);
    }

    [Fact]
    public async Task AdminToken_IssuedAndRevokedOnOneInstance_TakesEffectOnTheOther()
    {
        // B polls with the token until NOTIFY arrives: its failures must not count against the test's address.
        await using var b = new GatewayHost(env.Postgres.ConnectionString, new() { ["Gateway:AdminAuthFailuresPerAddress"] = Setting(1_000_000) });
        using var masterOnA = env.Gateway.Admin();
        var created = (await (await masterOnA.PostAsync("/admin/tokens", Json($$"""{"name":"two-instances-{{Guid.NewGuid():N}}"}"""))).Content.ReadFromJsonAsync<JsonObject>())!;
        using var tokenOnB = b.Client(created["token"]!.GetValue<string>());

        var accepted = await Eventually.UntilAsync(() => tokenOnB.GetAsync("/admin/keys"), r => r.StatusCode == HttpStatusCode.OK);
        (await masterOnA.PostAsync($"/admin/tokens/{created["id"]}/revoke", null)).EnsureSuccessStatusCode();
        var refused = await Eventually.UntilAsync(() => tokenOnB.GetAsync("/admin/keys"), r => r.StatusCode == HttpStatusCode.Unauthorized);

        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
    }
}
