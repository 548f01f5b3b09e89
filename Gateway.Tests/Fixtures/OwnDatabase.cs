using Gateway.Core.Persistence;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Gateway.Tests.Fixtures;

/// <summary>
/// A migrated database for one test class alone (as its class fixture): for tests whose locks, leases or instances must not
/// meet any other test's.
/// </summary>
public sealed class OwnDatabase : IAsyncLifetime
{
    public string ConnectionString { get; private set; } = "";

    public NpgsqlDataSource Source { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        ConnectionString = await TestEnvironment.Current.Postgres.CreateDatabaseAsync();
        Source = NpgsqlDataSource.Create(ConnectionString);
        await new Migrator(Source, NullLogger<Migrator>.Instance).MigrateAsync(CancellationToken.None);
    }

    public ValueTask DisposeAsync() => Source.DisposeAsync();
}
