using Dapper;
using Npgsql;

[assembly: AssemblyFixture(typeof(Gateway.Tests.Fixtures.TestEnvironment))]

namespace Gateway.Tests.Fixtures;

/// <summary>What the whole run shares: one database, one fake upstream, one gateway host. Tests make their own keys and models.</summary>
public sealed class TestEnvironment : IAsyncLifetime
{
    /// <summary>The run's environment, for class fixtures (which cannot take the assembly fixture in their constructor).</summary>
    public static TestEnvironment Current { get; private set; } = null!;

    public PostgresFixture Postgres { get; } = new();

    public FakeOpenAI Upstream { get; private set; } = null!;

    public FakeGemini Gemini { get; private set; } = null!;

    public FakeAnthropic Anthropic { get; private set; } = null!;

    public GatewayHost Gateway { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        await Postgres.InitializeAsync();
        Upstream = await FakeOpenAI.StartAsync();
        Gemini = await FakeGemini.StartAsync();
        Anthropic = await FakeAnthropic.StartAsync();
        Gateway = new GatewayHost(Postgres.ConnectionString);
        Current = this;
    }

    /// <summary>The usage rows of one request, once the background writer stored them.</summary>
    public async Task<UsageRow> WaitForUsageAsync(Guid requestId, int timeoutMs = 10_000)
    {
        var deadline = Environment.TickCount64 + timeoutMs;
        while (true)
        {
            var rows = await UsageRowsAsync(requestId);
            if (rows.Count > 0) return Assert.Single(rows);
            if (Environment.TickCount64 > deadline) throw new TimeoutException($"No usage row for {requestId}.");
            await Task.Delay(50);
        }
    }

    public async Task<List<UsageRow>> UsageRowsAsync(Guid requestId)
    {
        await using var connection = new NpgsqlConnection(Postgres.ConnectionString);
        return (await connection.QueryAsync<UsageRow>("SELECT * FROM usage_events WHERE request_id = @requestId", new { requestId })).AsList();
    }

    public async Task<List<UsageRow>> UsageRowsForKeyAsync(Guid keyId)
    {
        await using var connection = new NpgsqlConnection(Postgres.ConnectionString);
        return (await connection.QueryAsync<UsageRow>("SELECT * FROM usage_events WHERE key_id = @keyId ORDER BY occurred_at", new { keyId })).AsList();
    }

    public async ValueTask DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Upstream.DisposeAsync();
        await Gemini.DisposeAsync();
        await Anthropic.DisposeAsync();
        await Postgres.DisposeAsync();
    }
}

public sealed class UsageRow
{
    public Guid RequestId { get; init; }
    public DateTime OccurredAt { get; init; }
    public Guid KeyId { get; init; }
    public string? EndUser { get; init; }
    public string? AskedModel { get; init; }
    public string? ServedModel { get; init; }
    public string? Provider { get; init; }
    public int PromptTokens { get; init; }
    public int CompletionTokens { get; init; }
    public int CachedTokens { get; init; }
    public bool UsageEstimated { get; init; }
    public decimal? InputPricePerMtok { get; init; }
    public decimal? OutputPricePerMtok { get; init; }
    public decimal? CachedInputPricePerMtok { get; init; }
    public decimal CostUsd { get; init; }
    public int LatencyMs { get; init; }
    public int? TtftMs { get; init; }
    public short Status { get; init; }
    public string? ErrorKind { get; init; }
    public bool Streamed { get; init; }
    public short Attempts { get; init; }
    public string? DowngradedFrom { get; init; }
    public string? RoutingRule { get; init; }
    public bool Fallback { get; init; }
    public string[]? InjectionFlags { get; init; }
}
