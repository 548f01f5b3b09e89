using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Dapper;
using Gateway.Core.Persistence;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Gateway.Tests.Persistence;

public sealed class MigrationTests(TestEnvironment env)
{
    private static readonly string[] Scripts = Directory.GetFiles(Path.Combine(RepoPaths.Root, "migrations"), "*.sql")
        .Select(f => "migrations." + Path.GetFileName(f)).Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public async Task Migrations_ThreeInstancesStartingTogether_ApplyEachScriptOnce()
    {
        var connectionString = await env.Postgres.CreateDatabaseAsync();
        var sources = Enumerable.Range(0, 3).Select(_ => NpgsqlDataSource.Create(connectionString)).ToList();

        await Task.WhenAll(sources.Select(db => new Migrator(db, NullLogger<Migrator>.Instance).MigrateAsync(CancellationToken.None)));

        await using var connection = new NpgsqlConnection(connectionString);
        var applied = (await connection.QueryAsync<string>("SELECT scriptname FROM schemaversions ORDER BY scriptname")).ToArray();
        Assert.Equal(Scripts, applied);
        Assert.Equal("mock-1", await connection.ExecuteScalarAsync<string>("SELECT upstream_model FROM models WHERE alias = 'mock'"));
        foreach (var db in sources) await db.DisposeAsync();
    }

    [Fact]
    public async Task Migrations_RunAgain_ChangeNothing()
    {
        var connectionString = await env.Postgres.CreateDatabaseAsync();
        await using var db = NpgsqlDataSource.Create(connectionString);
        var migrator = new Migrator(db, NullLogger<Migrator>.Instance);

        await migrator.MigrateAsync(CancellationToken.None);
        await migrator.MigrateAsync(CancellationToken.None);

        await using var connection = await db.OpenConnectionAsync();
        Assert.Equal(Scripts.Length, await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM schemaversions"));
        Assert.Equal(1, await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM models WHERE alias = 'mock'"));
    }

    [Fact]
    public async Task StoredResponseItems_RowsStoredInChatForm_BecomeResponsesInputItemsInOrder()
    {
        var connectionString = await env.Postgres.CreateDatabaseAsync();
        await using var db = NpgsqlDataSource.Create(connectionString);
        var migrator = new Migrator(db, NullLogger<Migrator>.Instance);
        await migrator.MigrateAsync(CancellationToken.None);

        // Back to the shape before 0032, with a conversation stored in chat form and one already in items.
        await using (var connection = await db.OpenConnectionAsync())
        {
            await connection.ExecuteAsync("""
                ALTER TABLE stored_responses RENAME COLUMN items TO messages;
                DELETE FROM schemaversions WHERE scriptname = 'migrations.0032_stored_response_items.sql';
                INSERT INTO api_keys (id, name, prefix, key_hash) VALUES ('00000000-0000-0000-0000-00000000a032', 'legacy', 'gw-legacy', sha256('legacy'));
                INSERT INTO stored_responses (id, key_id, created_at, expires_at, messages, response) VALUES
                  ('resp_chat', '00000000-0000-0000-0000-00000000a032', now(), now() + interval '1 day',
                   '[{"role":"user","content":"Weather?"},
                     {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}},
                                                                      {"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
                     {"role":"tool","tool_call_id":"call_1","content":"sunny"},
                     {"role":"assistant","content":"It is sunny."}]', '{}'),
                  ('resp_items', '00000000-0000-0000-0000-00000000a032', now(), now() + interval '1 day',
                   '[{"type":"message","role":"user","content":"hi"}]', '{}');
                """);
        }
        await migrator.MigrateAsync(CancellationToken.None);

        await using var check = await db.OpenConnectionAsync();
        var items = JsonNode.Parse(await check.ExecuteScalarAsync<string>("SELECT items::text FROM stored_responses WHERE id = 'resp_chat'") ?? "null")!.AsArray();
        Assert.Equal(["message", "function_call", "function_call", "function_call_output", "message"], items.Select(i => i!["type"]!.GetValue<string>()));
        Assert.Equal(("Weather?", "call_1", "get_time", "call_1", "sunny", "It is sunny."),
            (items[0]!["content"]!.GetValue<string>(), items[1]!["call_id"]!.GetValue<string>(), items[2]!["name"]!.GetValue<string>(),
             items[3]!["call_id"]!.GetValue<string>(), items[3]!["output"]!.GetValue<string>(), items[4]!["content"]!.GetValue<string>()));
        Assert.Equal("""[{"role": "user", "type": "message", "content": "hi"}]""",
            await check.ExecuteScalarAsync<string>("SELECT items::text FROM stored_responses WHERE id = 'resp_items'"));
    }

    [Fact]
    public async Task MigrateCommand_AppliesMigrationsAndExits()
    {
        var connectionString = await env.Postgres.CreateDatabaseAsync();
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Gateway.Api.dll"));
        start.ArgumentList.Add("migrate");
        start.Environment["ConnectionStrings__Gateway"] = connectionString;
        start.Environment["Gateway__DataProtectionKeysDirectory"] = Path.Combine(Path.GetTempPath(), "gw-dp-" + Guid.NewGuid().ToString("N")[..8]);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);

        Assert.True(process.ExitCode == 0, await output + await errors);
        await using var connection = new NpgsqlConnection(connectionString);
        Assert.Equal(Scripts.Length, await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM schemaversions"));
    }

    [Fact]
    public async Task SeedFile_ProvidersAndModelsAreUpsertedAtStartUp()
    {
        var connectionString = await env.Postgres.CreateDatabaseAsync();
        var seed = Path.Combine(Path.GetTempPath(), $"gateway-seed-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(seed, $$"""
            {
              // comments are allowed, like in appsettings.json
              "providers": [
                { "name": "upstream", "protocol": "openai", "base_url": "{{env.Upstream.BaseUrl}}", "secret_ref": "env:GATEWAY_SECRET_SEED_TEST" }
              ],
              "models": [
                { "alias": "cheap", "provider": "upstream", "upstream_model": "gpt-4o-mini",
                  "input_price_per_mtok": 0.15, "output_price_per_mtok": 0.60, "cached_input_price_per_mtok": 0.075, "context_window": 128000 }
              ]
            }
            """);
        try
        {
            await using var host = new GatewayHost(connectionString, new() { ["Gateway:SeedFile"] = seed });
            using var admin = host.Admin();
            var models = (await admin.GetFromJsonAsync<JsonArray>("/admin/models"))!;
            var cheap = models.Single(m => m!["alias"]!.GetValue<string>() == "cheap")!;
            Assert.Equal(("upstream", 0.15m, 0.60m, 0.075m, 128000),
                (cheap["provider"]!.GetValue<string>(), cheap["input_price_per_mtok"]!.GetValue<decimal>(),
                 cheap["output_price_per_mtok"]!.GetValue<decimal>(), cheap["cached_input_price_per_mtok"]!.GetValue<decimal>(),
                 cheap["context_window"]!.GetValue<int>()));

            var (key, _) = await host.CreateKeyAsync();
            using var client = host.Client(key);
            var models2 = await client.GetStringAsync("/v1/models");
            Assert.Contains("\"cheap\"", models2, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(seed);
        }
    }

    [Fact]
    public async Task ExampleSeedFile_InTheRepository_Loads()
    {
        var connectionString = await env.Postgres.CreateDatabaseAsync();

        await using var host = new GatewayHost(connectionString, new() { ["Gateway:SeedFile"] = Path.Combine(RepoPaths.Root, "gateway.example.json") });

        using var admin = host.Admin();
        var aliases = (await admin.GetFromJsonAsync<JsonArray>("/admin/models"))!.Select(m => m!["alias"]!.GetValue<string>()).ToList();
        Assert.Contains("gpt-4o-mini", aliases);
        Assert.Contains("deepseek-chat", aliases);
        Assert.Contains("claude-sonnet", aliases);
        Assert.Contains("gemini-flash", aliases);
        var routes = (await admin.GetFromJsonAsync<JsonArray>("/admin/routes"))!.Select(r => r!["name"]!.GetValue<string>()).ToList();
        Assert.Equal(["long-context", "classification", "cost-sensitive", "default"], routes);
        Assert.Contains("mock", aliases);
    }

    [Fact]
    public async Task Health_ReadyAfterStartUp()
    {
        using var client = env.Gateway.Client();

        var ready = await client.GetAsync("/health/ready");
        var live = await client.GetAsync("/health/live");

        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal("Healthy", (await ready.Content.ReadFromJsonAsync<JsonObject>())!["status"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
    }
}
