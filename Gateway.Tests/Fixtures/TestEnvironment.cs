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
    public async Task<UsageRow> WaitForUsageAsync(Guid requestId)
    {
        var rows = await Eventually.UntilAsync(() => UsageRowsAsync(requestId), rows => rows.Count > 0, pause: TimeSpan.FromMilliseconds(50));
        if (rows.Count == 0) throw new TimeoutException($"No usage row for {requestId} within {Eventually.Bound.TotalSeconds:0} s.");
        return Assert.Single(rows);
    }

    /// <summary>The outcome of each candidate in a request's attempt trail (["ok"] when one call served it), once its row is stored.</summary>
    public async Task<string[]> TrailOutcomesAsync(Guid requestId) =>
        (await WaitForUsageAsync(requestId)).AttemptTrail is { } trail
            ? [.. System.Text.Json.Nodes.JsonNode.Parse(trail)!.AsArray().Select(a => a!["outcome"]!.GetValue<string>())]
            : ["ok"];

    /// <summary>
    /// Waits until <paramref name="host"/>'s usage writer has stored everything it was given before now: it sends a
    /// request of its own and waits for that row (the writer stores records in the order they came). A test that
    /// checks that something was NOT written (a duplicate row) calls this first instead of sleeping.
    /// </summary>
    public async Task UsageWriterCaughtUpAsync(GatewayHost host)
    {
        var (key, _) = await host.CreateKeyAsync("writer-marker");
        using var client = host.Client(key);
        using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
            """{"model":"mock","messages":[{"role":"user","content":"marker"}]}""", System.Text.Encoding.UTF8, "application/json"));
        response.EnsureSuccessStatusCode();
        await WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
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
    public int CacheWriteTokens { get; init; }
    public int CacheWrite1hTokens { get; init; }
    public bool UsageEstimated { get; init; }
    public decimal? InputPricePerMTok { get; init; }
    public decimal? OutputPricePerMTok { get; init; }
    public decimal? CachedInputPricePerMTok { get; init; }
    public decimal? CacheWritePricePerMTok { get; init; }
    public decimal? CacheWrite1hPricePerMTok { get; init; }
    public decimal CostUsd { get; init; }
    public int LatencyMs { get; init; }
    public int? TtftMs { get; init; }
    public short Status { get; init; }
    public string? ErrorKind { get; init; }
    /// <summary>JSON array of the candidates tried; null when one call served.</summary>
    public string? AttemptTrail { get; init; }
    public bool Streamed { get; init; }
    public string? FrontDoor { get; init; }
    public short Attempts { get; init; }
    public string? DowngradedFrom { get; init; }
    public string? RoutingRule { get; init; }
    public bool Fallback { get; init; }
    public string[]? InjectionFlags { get; init; }
}
