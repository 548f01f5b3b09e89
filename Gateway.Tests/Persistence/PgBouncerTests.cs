using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Dapper;
using Gateway.Tests.Fixtures;
using Npgsql;
using static Gateway.Tests.Fixtures.TestJson;

namespace Gateway.Tests.Persistence;

/// <summary>
/// The gateway with its ordinary connection through PgBouncer in transaction pooling mode and <c>ConnectionStrings:GatewayDirect</c>
/// for what needs a session (LISTEN, the migration lock); and reports read from <c>ConnectionStrings:GatewayReports</c> (a read
/// replica in production) when it is set.
/// </summary>
public sealed class PgBouncerTests(TestEnvironment env, PgBouncerFixture bouncer) : IClassFixture<PgBouncerFixture>
{
    private const string Hello = """{"model":"mock","messages":[{"role":"user","content":"hi"}]}""";

    [Fact]
    public async Task TwoInstancesBehindPgBouncer_MigrateAFreshDatabaseTogether_IssueAKey_Answer_StoreTheUsageRow()
    {
        var direct = await env.Postgres.CreateDatabaseAsync();
        Dictionary<string, string?> settings = new() { ["ConnectionStrings:GatewayDirect"] = direct };

        // Both migrate at start-up under the session advisory lock, which only the direct connection can hold.
        var started = await Task.WhenAll(Task.Run(() => new GatewayHost(bouncer.Pooled(direct), settings)),
            Task.Run(() => new GatewayHost(bouncer.Pooled(direct), settings)));
        await using var a = started[0];
        await using var b = started[1];

        using var admin = a.Admin();
        var created = await admin.PostAsync("/admin/keys", Json("""{"name":"through-pgbouncer","allowed_models":["mock"]}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var body = (await created.Content.ReadFromJsonAsync<JsonObject>())!;
        var key = body["key"]!.GetValue<string>();
        await b.WaitForKeyAsync(key); // the key's NOTIFY reached B's direct LISTEN

        using var client = b.Client(key);
        var answer = await client.PostAsync("/v1/chat/completions", Json(Hello));
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        var requestId = Guid.Parse(answer.Headers.GetValues("x-gateway-request-id").Single());

        await using var connection = new NpgsqlConnection(direct);
        var row = await Eventually.UntilAsync(
            () => connection.QuerySingleOrDefaultAsync<(Guid KeyId, short Status)?>(
                "SELECT key_id, status FROM usage_events WHERE request_id = @requestId", new { requestId }),
            r => r is not null, pause: TimeSpan.FromMilliseconds(50));
        Assert.Equal((body["id"]!.GetValue<Guid>(), (short)200), row);
        Assert.Equal(1L, await connection.ExecuteScalarAsync<long>(
            "SELECT requests FROM usage_daily WHERE key_id = @id", new { id = body["id"]!.GetValue<Guid>() }));
        // Every migration ran once.
        Assert.Equal(Directory.GetFiles(Path.Combine(RepoPaths.Root, "migrations"), "*.sql").Length,
            await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM schemaversions"));
    }

    [Fact]
    public async Task KeyChangedThroughTheAdminApi_ReachesAnInstanceBehindPgBouncer_ThroughItsDirectListen()
    {
        var application = "gw-direct-" + Guid.NewGuid().ToString("N")[..8];
        var direct = new NpgsqlConnectionStringBuilder(env.Postgres.ConnectionString) { ApplicationName = application }.ConnectionString;
        await using var behind = new GatewayHost(bouncer.Pooled(env.Postgres.ConnectionString),
            new() { ["ConnectionStrings:GatewayDirect"] = direct });

        // Issued and later revoked through the other instance's admin API (no pooler in its way).
        var (key, id) = await env.Gateway.CreateKeyAsync(allowedModels: ["mock"]);
        using var client = behind.Client(key);
        var served = await Eventually.UntilAsync(() => client.PostAsync("/v1/chat/completions", Json(Hello)), r => r.StatusCode == HttpStatusCode.OK);
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);

        using var admin = env.Gateway.Admin();
        (await admin.PostAsync($"/admin/keys/{id}/revoke", null)).EnsureSuccessStatusCode();
        var refused = await Eventually.UntilAsync(() => client.PostAsync("/v1/chat/completions", Json(Hello)),
            r => r.StatusCode == HttpStatusCode.Unauthorized);
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);

        // The listening session is the direct one (its application name), not a server connection PgBouncer hands around.
        await using var connection = new NpgsqlConnection(env.Postgres.ConnectionString);
        var listening = await connection.QueryAsync<string>(
            "SELECT query FROM pg_stat_activity WHERE application_name = @application", new { application });
        Assert.Contains(listening, q => q is "LISTEN gateway_changes" or "SELECT 1");
    }

    [Fact]
    public async Task SpendReports_WithAReportsConnection_ReadThere_NotFromThePrimary()
    {
        // A database standing in for a read replica: it holds a day's aggregate the primary does not have.
        var replica = await env.Postgres.CreateDatabaseAsync();
        await using (var source = NpgsqlDataSource.Create(replica))
        {
            await new Gateway.Core.Persistence.Migrator(source, Microsoft.Extensions.Logging.Abstractions.NullLogger<Gateway.Core.Persistence.Migrator>.Instance)
                .MigrateAsync(CancellationToken.None);
            await using var c = await source.OpenConnectionAsync();
            await c.ExecuteAsync("""
                INSERT INTO usage_daily (key_id, day, requests, errors, prompt_tokens, completion_tokens, cached_tokens, cost_usd)
                VALUES (gen_random_uuid(), '2001-02-03', 7, 0, 70, 35, 0, 1.23)
                """);
        }
        await using var host = new GatewayHost(env.Postgres.ConnectionString, new() { ["ConnectionStrings:GatewayReports"] = replica });
        using var admin = host.Admin();

        var rows = (await admin.GetFromJsonAsync<JsonArray>("/admin/reports/spend?group_by=day&from=2001-02-03&to=2001-02-03"))!;

        var day = Assert.Single(rows)!;
        Assert.Equal((7L, 1.23m), (day["requests"]!.GetValue<long>(), day["cost_usd"]!.GetValue<decimal>()));
        using var primary = env.Gateway.Admin();
        Assert.Empty((await primary.GetFromJsonAsync<JsonArray>("/admin/reports/spend?group_by=day&from=2001-02-03&to=2001-02-03"))!);
    }
}
