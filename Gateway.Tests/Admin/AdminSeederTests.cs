extern alias admin;

using System.Net;
using admin::Gateway.Admin.Account;
using Gateway.Core.Persistence;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Gateway.Tests.Admin;

/// <summary>The first Admin is created once, however many admin apps start together on a fresh database.</summary>
public sealed class AdminSeederTests(TestEnvironment env)
{
    // The race is one of timing: a few rounds make a seeder that checks and inserts without taking turns fail reliably.
    private const int Rounds = 4;

    [Fact]
    public async Task TwoAdminApps_StartTogetherOnAFreshDatabase_BothServe_AndOneFirstAdminIsCreated()
    {
        var ct = TestContext.Current.CancellationToken;
        // One migrated database without users, copied for each round: both apps then reach the seeder at about the same time
        // (with migrations still to run, the Migrator's lock would space them out).
        var template = await env.Postgres.CreateDatabaseAsync();
        await using (var source = NpgsqlDataSource.Create(template))
            await new Migrator(source, NullLogger<Migrator>.Instance).MigrateAsync(ct);
        var server = new NpgsqlConnectionStringBuilder(template) { Database = "postgres" }.ConnectionString;
        var templateName = new NpgsqlConnectionStringBuilder(template).Database!;

        for (var round = 1; round <= Rounds; round++)
        {
            var database = "gateway_seed_" + Guid.NewGuid().ToString("N")[..12];
            await ExecuteAsync(server, $"CREATE DATABASE {database} TEMPLATE {templateName}", ct);
            var connectionString = new NpgsqlConnectionStringBuilder(template) { Database = database }.ConnectionString;
            var starting = new[] { Task.Run(() => new AdminHost(connectionString), ct), Task.Run(() => new AdminHost(connectionString), ct) };
            try
            {
                var hosts = await Task.WhenAll(starting);

                foreach (var host in hosts)
                {
                    using var client = new HttpClient { BaseAddress = host.BaseAddress };
                    Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/account/login", ct)).StatusCode);
                }
                Assert.Equal(["admin@localhost"], await UserNamesAsync(connectionString, ct));
                Assert.Single(hosts, h => h.Services.GetServices<IHostedService>().OfType<AdminSeeder>().Single().CreatedFirstAdmin);
            }
            finally
            {
                // Task.WhenAll waited for both; a host that failed to start has nothing to dispose.
                foreach (var task in starting.Where(t => t.IsCompletedSuccessfully)) await (await task).DisposeAsync();
                await ExecuteAsync(server, $"DROP DATABASE IF EXISTS {database} WITH (FORCE)", CancellationToken.None);
            }
        }
        await ExecuteAsync(server, $"DROP DATABASE IF EXISTS {templateName} WITH (FORCE)", CancellationToken.None);
    }

    private static async Task ExecuteAsync(string connectionString, string sql, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(ct);
    }

    private static async Task<List<string>> UserNamesAsync(string connectionString, CancellationToken ct)
    {
        // Unpooled: the database is dropped after the round.
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString);
        await connection.OpenAsync(ct);
        await using var command = new NpgsqlCommand("SELECT user_name FROM admin_users", connection);
        await using var reader = await command.ExecuteReaderAsync(ct);
        var names = new List<string>();
        while (await reader.ReadAsync(ct)) names.Add(reader.GetString(0));
        return names;
    }
}
