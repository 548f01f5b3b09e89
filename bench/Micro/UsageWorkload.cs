using Dapper;
using Gateway.Core.Budgets;
using Gateway.Core.Catalog;
using Gateway.Core.Metering;
using Gateway.Core.Providers;
using Npgsql;

namespace Micro;

/// <summary>
/// Usage records shaped like a busy gateway's: 100 keys (the first ten with hard caps, so their rows carry a budget lease),
/// nine models on six providers at their list prices, a third of the requests with an end user, half streamed, 3% errors and
/// 2% served by a fallback. Deterministic (fixed seed), so two runs write the same mix.
/// </summary>
internal sealed class UsageWorkload
{
    public const int KeyCount = 100;
    private const int CappedKeys = 10;

    private static readonly ProviderInfo[] Providers = [.. new[] { "openai", "deepseek", "mistral", "qwen", "anthropic", "gemini" }
        .Select(name => new ProviderInfo(Guid.Empty, name, name, new Uri("http://127.0.0.1:9/"), null, null, ProviderSettings.Default))];

    /// <summary>The models rows are served by, also used by <see cref="UsageFiller"/> for the rows it makes up.</summary>
    public static readonly ModelRoute[] Models =
    [
        Model("gpt-4o-mini", 0, "gpt-4o-mini", 0.15m, 0.60m, 0.075m),
        Model("gpt-4o", 0, "gpt-4o", 2.50m, 10.00m, 1.25m),
        Model("deepseek-chat", 1, "deepseek-chat", 0.27m, 1.10m, 0.07m),
        Model("mistral-small", 2, "mistral-small-latest", 0.10m, 0.30m, 0.10m),
        Model("qwen-turbo", 3, "qwen-turbo", 0.05m, 0.20m, 0.05m),
        Model("claude-sonnet", 4, "claude-sonnet-4-5", 3.00m, 15.00m, 0.30m),
        Model("claude-haiku", 4, "claude-haiku-4-5", 1.00m, 5.00m, 0.10m),
        Model("gemini-flash", 5, "gemini-2.5-flash", 0.30m, 2.50m, 0.075m),
        Model("gemini-pro", 5, "gemini-2.5-pro", 1.25m, 10.00m, 0.31m),
    ];

    private const string FallbackTrail = """
        [{"provider":"openai","model":"gpt-4o-mini","outcome":"rate_limited","ms":182},{"provider":"gemini","model":"gemini-2.5-flash","outcome":"ok","ms":1930}]
        """;

    /// <summary>The keys' ids; they need no <c>api_keys</c> row (usage rows reference keys by id only).</summary>
    public static readonly Guid[] Keys = [.. Enumerable.Range(1, KeyCount).Select(i => new Guid($"0195d1a0-0000-7000-8000-{i:D12}"))];

    private readonly Random _random = new(20261124);
    private readonly TimeProvider _time;
    private readonly BudgetCalendar _calendar;
    private readonly Guid[] _leases = [.. Enumerable.Range(0, CappedKeys).Select(_ => Guid.CreateVersion7())];

    public UsageWorkload(TimeProvider time, BudgetCalendar calendar)
    {
        _time = time;
        _calendar = calendar;
    }

    /// <summary>Today's lease of each capped key, large enough for any run: the writer moves each row's cost out of it.</summary>
    public async Task LeaseAsync(NpgsqlDataSource db, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition("""
            INSERT INTO budget_leases (id, key_id, day, amount)
            SELECT id, key_id, @day::date, 1000000 FROM unnest(@ids::uuid[], @keys::uuid[]) AS l(id, key_id)
            """, new { day = _calendar.Today.ToDateTime(TimeOnly.MinValue), ids = _leases, keys = Keys[..CappedKeys] }, cancellationToken: ct));
    }

    public UsageRecord Next()
    {
        var at = _time.GetUtcNow();
        var keyIndex = _random.Next(KeyCount);
        var roll = _random.Next(100);
        var model = Models[_random.Next(Models.Length)];
        var streamed = _random.Next(2) == 0;
        var record = new UsageRecord
        {
            RequestId = Guid.CreateVersion7(at),
            OccurredAt = at,
            KeyId = Keys[keyIndex],
            Day = _calendar.DayOf(at),
            EndUser = _random.Next(3) == 0 ? $"user-{_random.Next(5000)}" : null,
            AskedModel = roll < 30 ? "auto" : model.Alias,
            RoutingRule = roll < 30 ? "default" : null,
            Streamed = streamed,
            LeaseId = keyIndex < CappedKeys ? _leases[keyIndex] : null,
            LatencyMs = _random.Next(250, 9000),
            Status = 200,
        };
        if (roll < 1)
        {
            // Refused before any provider call: no model, no tokens, no cost.
            record.Status = 429;
            record.ErrorKind = "rate_limit_exceeded";
            record.LatencyMs = _random.Next(1, 5);
            return record;
        }
        var usage = new TokenUsage(_random.Next(20, 4000), roll < 3 ? 0 : _random.Next(1, 1200), _random.Next(4) == 0 ? 1024 : 0);
        record.Provider = model.Provider.Name;
        record.ServedModel = model.UpstreamModel;
        record.InputPricePerMTok = model.InputPricePerMTok;
        record.OutputPricePerMTok = model.OutputPricePerMTok;
        record.CachedInputPricePerMTok = model.CachedInputPricePerMTok;
        record.PromptTokens = usage.PromptTokens;
        record.CompletionTokens = usage.CompletionTokens;
        record.CachedTokens = Math.Min(usage.CachedTokens, usage.PromptTokens);
        record.CostUsd = Pricing.Cost(model, usage);
        record.TtftMs = streamed ? _random.Next(150, 2500) : null;
        if (roll < 3)
        {
            record.Status = 502;
            record.ErrorKind = "upstream_error";
            record.UsageEstimated = true;
        }
        else if (roll < 5)
        {
            record.Attempts = 2;
            record.Fallback = true;
            record.AttemptTrail = FallbackTrail;
        }
        return record;
    }

    private static ModelRoute Model(string alias, int provider, string upstream, decimal input, decimal output, decimal cached) =>
        new(Guid.Empty, alias, Providers[provider], upstream, input, output, cached, input * 1.25m, input * 2, null, null, DateTimeOffset.UnixEpoch);
}
