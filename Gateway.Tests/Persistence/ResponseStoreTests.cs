using Dapper;
using Gateway.Core.Responses;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace Gateway.Tests.Persistence;

/// <summary>The stored responses' retention, on the migrated database with the clock injected.</summary>
public sealed class ResponseStoreTests(TestEnvironment env)
{
    [Fact]
    public async Task StoredResponse_PastRetention_IsNotReadNorDeletable_AndThePurgeRemovesIt()
    {
        var ct = TestContext.Current.CancellationToken;
        var (_, keyId) = await env.Gateway.CreateKeyAsync();
        // A clock in the past: its purge reaches only rows that expired by then, never another test's.
        var clock = new FakeTimeProvider(new DateTimeOffset(2020, 3, 1, 12, 0, 0, TimeSpan.Zero));
        await using var db = NpgsqlDataSource.Create(env.Postgres.ConnectionString);
        var store = new ResponseStore(db, clock, Options.Create(new ResponsesOptions { RetentionDays = 2 }), NullLogger<ResponseStore>.Instance);
        var id = "resp_" + Guid.NewGuid().ToString("N");
        await store.SaveAsync(id, keyId, """[{"role":"user","content":"hi"}]""", $$"""{"id":"{{id}}","object":"response"}""", ct);

        clock.Advance(TimeSpan.FromDays(2) - TimeSpan.FromSeconds(1));
        Assert.NotNull(await store.GetAsync(id, keyId, ct));
        Assert.Null(await store.GetAsync(id, Guid.NewGuid(), ct)); // another key's

        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Null(await store.GetAsync(id, keyId, ct));
        Assert.False(await store.DeleteAsync(id, keyId, ct));
        Assert.True(await store.PurgeExpiredAsync() >= 1);
        await using var connection = await db.OpenConnectionAsync(ct);
        Assert.Equal(0, await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM stored_responses WHERE id = @id", new { id }));
    }
}
