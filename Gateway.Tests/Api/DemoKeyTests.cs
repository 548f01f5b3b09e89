using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Dapper;
using Gateway.Core.Seeding;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Gateway.Tests.Api;

/// <summary>
/// The development demo key (Gateway:SeedDemoKey, which run.sh turns on): one per database ever, whatever became of it, and
/// little to lose when it leaks. Each test starts its hosts on a database of its own, since the demo key is per database.
/// </summary>
public sealed class DemoKeyTests(TestEnvironment env) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("gw-demo-").FullName;

    private string KeyFile(string name = "demo-key") => Path.Combine(_folder, name);

    private static Dictionary<string, string?> Issuing(string keyFile) => new() { ["Gateway:SeedDemoKey"] = "true", ["Gateway:DemoKeyFile"] = keyFile };

    private static async Task<List<(Guid Id, string Name)>> KeysAsync(string db)
    {
        await using var connection = new NpgsqlConnection(db);
        return (await connection.QueryAsync<(Guid, string)>("SELECT id, name FROM api_keys ORDER BY created_at")).AsList();
    }

    private static async Task<Guid?> MarkedDemoKeyAsync(string db)
    {
        await using var connection = new NpgsqlConnection(db);
        return await connection.ExecuteScalarAsync<Guid?>("SELECT ref_id FROM seed_markers WHERE name = 'demo_key'");
    }

    [Fact]
    public async Task DemoKey_RenamedOrRevokedThenRestarted_IsNotIssuedAgain()
    {
        var db = await env.Postgres.CreateDatabaseAsync();
        Guid id;
        await using (var first = new GatewayHost(db, Issuing(KeyFile())))
        {
            Assert.StartsWith("gw-", await File.ReadAllTextAsync(KeyFile()), StringComparison.Ordinal);
            id = Assert.Single(await KeysAsync(db)).Id;
            using var admin = first.Admin();
            (await admin.PatchAsync($"/admin/keys/{id}", Json("""{"name":"my-playground"}"""))).EnsureSuccessStatusCode();
        }
        File.Delete(KeyFile());

        // The old seeding looked for a key named "demo": a rename made the next start issue (and print) a second, unlimited one.
        await using (var second = new GatewayHost(db, Issuing(KeyFile())))
        {
            Assert.False(File.Exists(KeyFile()), "a second demo key was issued after a rename");
            using var admin = second.Admin();
            (await admin.PostAsync($"/admin/keys/{id}/revoke", null)).EnsureSuccessStatusCode();
        }
        await using (new GatewayHost(db, Issuing(KeyFile())))
        {
            Assert.False(File.Exists(KeyFile()), "a second demo key was issued after a revocation");
        }

        Assert.Equal([(id, "my-playground")], await KeysAsync(db));
        Assert.Equal(id, await MarkedDemoKeyAsync(db));
    }

    [Fact]
    public async Task DemoKey_HasOnlyMockModelsADailyHardCapARateLimitAndAnExpiry()
    {
        var db = await env.Postgres.CreateDatabaseAsync();
        await using var host = new GatewayHost(db, Issuing(KeyFile()));
        var issuedAround = TimeProvider.System.GetUtcNow();
        var key = await File.ReadAllTextAsync(KeyFile());
        var id = Assert.Single(await KeysAsync(db)).Id;
        using var admin = host.Admin();
        var details = (await admin.GetFromJsonAsync<JsonObject>($"/admin/keys/{id}"))!;
        Assert.Equal(("demo", 1m, 60), (details["name"]!.GetValue<string>(), details["hard_cap_usd"]!.GetValue<decimal>(), details["rpm_limit"]!.GetValue<int>()));
        Assert.Equal(["mock", "mock-mini", "auto"], details["allowed_models"]!.AsArray().Select(m => m!.GetValue<string>()));
        Assert.InRange(details["expires_at"]!.GetValue<DateTimeOffset>(), issuedAround.AddDays(30).AddMinutes(-5), issuedAround.AddDays(30).AddMinutes(5));
        var paid = await host.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o");
        using var client = host.Client(key);

        // A paid provider's model: refused, so a leaked demo key spends nothing real.
        var other = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{paid}}","messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.Forbidden, other.StatusCode);
        Assert.Equal("model_not_allowed", (await other.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["code"]!.GetValue<string>());

        // mock's output costs $2 per million tokens: 400,000 of them ($0.80) fit under the $1 daily cap, 600,000 ($1.20) do not.
        var fits = await client.PostAsync("/v1/chat/completions", Json("""{"model":"mock","max_tokens":400000,"messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.OK, fits.StatusCode);
        var over = await client.PostAsync("/v1/chat/completions", Json("""{"model":"mock","max_tokens":600000,"messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.TooManyRequests, over.StatusCode);
        Assert.Equal("insufficient_quota", (await over.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["code"]!.GetValue<string>());

        // 60 a minute: the bucket starts with a minute's worth and refills one a second, so a burst meets a 429 soon after 60.
        HttpResponseMessage? limited = null;
        var answered = 0;
        for (var i = 0; i < 200 && limited is null; i++)
        {
            var response = await client.PostAsync("/v1/chat/completions", Json("""{"model":"mock-mini","messages":[{"role":"user","content":"hi"}]}"""));
            if (response.StatusCode == HttpStatusCode.TooManyRequests) limited = response;
            else
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal("60", response.Headers.GetValues("x-ratelimit-limit-requests").Single());
                answered++;
            }
        }
        Assert.NotNull(limited);
        var error = (await limited.Content.ReadFromJsonAsync<JsonObject>())!["error"]!;
        Assert.Equal(("rate_limit_exceeded", "requests"), (error["code"]!.GetValue<string>(), error["type"]!.GetValue<string>()));
        Assert.InRange(answered, 50, 199);
    }

    [Fact]
    public async Task DemoKey_IssuedByTheNameOnlySeedingBeforeTheUpgrade_IsTheOneDemoKeyAfterIt()
    {
        var db = await env.Postgres.CreateDatabaseAsync();
        Guid id;
        await using (var before = new GatewayHost(db))
        {
            id = (await before.CreateKeyAsync(DemoKeyIssuer.Name)).Id; // what the old seeding issued
        }
        // The database as it was before migration 0025.
        await using (var connection = new NpgsqlConnection(db))
        {
            await connection.ExecuteAsync("DROP TABLE seed_markers; DELETE FROM schemaversions WHERE scriptname = 'migrations.0025_seed_markers.sql'");
        }

        await using (new GatewayHost(db, Issuing(KeyFile())))
        {
            Assert.False(File.Exists(KeyFile()), "the upgrade issued a second demo key");
        }

        Assert.Equal([(id, "demo")], await KeysAsync(db));
        Assert.Equal(id, await MarkedDemoKeyAsync(db));
    }

    [Fact]
    public async Task DemoKey_SettingOff_IsNotIssued()
    {
        var db = await env.Postgres.CreateDatabaseAsync();

        await using (new GatewayHost(db, new() { ["Gateway:DemoKeyFile"] = KeyFile() }))
        {
            Assert.False(File.Exists(KeyFile()));
        }

        Assert.Empty(await KeysAsync(db));
        Assert.Null(await MarkedDemoKeyAsync(db));
    }

    [Fact]
    public async Task DemoKey_TwoHostsStartingOnOneEmptyDatabase_IssueExactlyOne()
    {
        var db = await env.Postgres.CreateDatabaseAsync();

        var starting = new[] { KeyFile("a"), KeyFile("b") }.Select(file => Task.Run(() => new GatewayHost(db, Issuing(file)))).ToArray();
        try
        {
            await Task.WhenAll(starting);
            var key = Assert.Single(await KeysAsync(db));
            Assert.Equal(key.Id, await MarkedDemoKeyAsync(db));
            Assert.Single(new[] { KeyFile("a"), KeyFile("b") }, File.Exists);
        }
        finally
        {
            foreach (var started in starting.Where(t => t.IsCompletedSuccessfully)) await (await started).DisposeAsync();
        }
    }

    [Fact]
    public async Task DemoKey_IssuedByManyCallersAtOnce_IsIssuedOnce()
    {
        var db = await env.Postgres.CreateDatabaseAsync();
        await using var host = new GatewayHost(db);
        var issuer = host.Services.GetRequiredService<DemoKeyIssuer>();

        var issued = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => Task.Run(() => issuer.IssueOnceAsync(CancellationToken.None))));

        var key = Assert.Single(issued, k => k is not null)!;
        Assert.Equal([(key.Id, "demo")], await KeysAsync(db));
        Assert.Equal(key.Id, await MarkedDemoKeyAsync(db));
        await using var connection = new NpgsqlConnection(db);
        Assert.Equal([(DemoKeyIssuer.Actor, "key.create", key.Id.ToString())],
            await connection.QueryAsync<(string, string, string)>("SELECT actor, action, entity_id FROM audit_log"));
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
