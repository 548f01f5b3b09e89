using Dapper;
using Gateway.Core.Budgets;
using Npgsql;

namespace Gateway.Core.Reports;

/// <summary>One budget day's use of one model (or provider), summed over the keys a filter selects.</summary>
public sealed record DailySpend
{
    public DateOnly Day { get; init; }
    public string Group { get; init; } = "";
    public long Requests { get; init; }
    public long Errors { get; init; }
    public long Fallbacks { get; init; }
    public long PromptTokens { get; init; }
    public long CompletionTokens { get; init; }
    public long CachedTokens { get; init; }
    public decimal CostUsd { get; init; }
}

/// <summary>One key's spend over a filter's range.</summary>
public sealed record KeySpend
{
    public Guid KeyId { get; init; }
    public string KeyName { get; init; } = "";
    public string KeyPrefix { get; init; } = "";
    public long Requests { get; init; }
    public decimal CostUsd { get; init; }
}

/// <summary>Latency percentiles (milliseconds, whole request) of the usage rows a filter selects; null without rows.</summary>
public sealed record LatencyStats
{
    public long Requests { get; init; }
    public double? P50Ms { get; init; }
    public double? P95Ms { get; init; }
}

/// <summary>One usage row as the dashboard's drill-down shows it (<see cref="OccurredAt"/> in UTC).</summary>
public sealed record UsageEvent
{
    public Guid RequestId { get; init; }
    public DateTime OccurredAt { get; init; }
    public Guid KeyId { get; init; }
    public string KeyName { get; init; } = "";
    public string? EndUser { get; init; }
    public string? AskedModel { get; init; }
    public string? ServedModel { get; init; }
    public string? Provider { get; init; }
    public int PromptTokens { get; init; }
    public int CompletionTokens { get; init; }
    public int CachedTokens { get; init; }
    public decimal CostUsd { get; init; }
    public int LatencyMs { get; init; }
    public int? TtftMs { get; init; }
    public short Status { get; init; }
    public string? ErrorKind { get; init; }
    public bool Streamed { get; init; }
    public short Attempts { get; init; }
    public bool Fallback { get; init; }
    public string? RoutingRule { get; init; }
    public string? DowngradedFrom { get; init; }
    public bool CacheHit { get; init; }
}

/// <summary>The values the dashboard's filters offer: models and providers with use in a range, and every key tag.</summary>
public sealed record SpendFilterOptions(IReadOnlyList<string> Models, IReadOnlyList<string> Providers, IReadOnlyList<string> Teams);

/// <summary>
/// The admin app's spend dashboard (Dapper). Everything but latency reads the daily aggregates per key, budget day, provider and
/// model (<c>usage_daily_models</c>), so any range up to <see cref="SpendReports.MaxDays"/> costs a row per group and day. Latency
/// percentiles need the usage rows themselves, so they are computed in SQL for at most <see cref="MaxLatencyDays"/> days; the
/// drill-down reads one page of usage rows (OFFSET/LIMIT in SQL) and counts them from the aggregates.
/// </summary>
public sealed class SpendDashboard(Persistence.ReportsDatabase reports, BudgetCalendar calendar)
{
    private readonly NpgsqlDataSource _db = reports.DataSource;

    /// <summary>The longest range whose latency percentiles are computed (they read every usage row of the range).</summary>
    public const int MaxLatencyDays = 31;

    /// <summary>The largest drill-down page.</summary>
    public const int MaxPageSize = 500;

    private const string DailySums = """
        sum(d.requests)::bigint AS requests, sum(d.errors)::bigint AS errors, sum(d.fallbacks)::bigint AS fallbacks,
        sum(d.prompt_tokens)::bigint AS prompt_tokens, sum(d.completion_tokens)::bigint AS completion_tokens,
        sum(d.cached_tokens)::bigint AS cached_tokens, sum(d.cost_usd) AS cost_usd
        """;

    private const string DailyByModelSql = $"""
        SELECT d.day, d.model AS "group", {DailySums} FROM usage_daily_models d
        WHERE {SpendFilter.AggregateWhere}
        GROUP BY d.day, d.model ORDER BY d.day, cost_usd DESC, "group"
        """;

    private const string DailyByProviderSql = $"""
        SELECT d.day, d.provider AS "group", {DailySums} FROM usage_daily_models d
        WHERE {SpendFilter.AggregateWhere}
        GROUP BY d.day, d.provider ORDER BY d.day, cost_usd DESC, "group"
        """;

    /// <summary>Spend per budget day and model or provider (<paramref name="by"/>), oldest day first, dearest group first within a day.</summary>
    public async Task<IReadOnlyList<DailySpend>> DailyAsync(SpendFilter filter, SpendGroup by, CancellationToken ct)
    {
        if (by is not (SpendGroup.Model or SpendGroup.Provider))
            throw new ArgumentOutOfRangeException(nameof(by), by, "The dashboard splits spend by model or provider.");
        await using var connection = await _db.OpenConnectionAsync(ct);
        // One call per grouping, each with constant SQL, which Dapper.AOT binds at build time.
        var rows = by == SpendGroup.Model
            ? await connection.QueryAsync<DailySpend>(DailyByModelSql, filter.Args(calendar, ct))
            : await connection.QueryAsync<DailySpend>(DailyByProviderSql, filter.Args(calendar, ct));
        return rows.AsList();
    }

    private const string TopKeysSql = $"""
        SELECT d.key_id, k.name AS key_name, k.prefix AS key_prefix, sum(d.requests)::bigint AS requests, sum(d.cost_usd) AS cost_usd
        FROM usage_daily_models d JOIN api_keys k ON k.id = d.key_id
        WHERE {SpendFilter.AggregateWhere}
        GROUP BY d.key_id, k.name, k.prefix ORDER BY cost_usd DESC, k.name, d.key_id LIMIT @limit
        """;

    /// <summary>The <paramref name="limit"/> keys that cost most, dearest first.</summary>
    public async Task<IReadOnlyList<KeySpend>> TopKeysAsync(SpendFilter filter, int limit, CancellationToken ct)
    {
        await using var connection = await _db.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<KeySpend>(TopKeysSql, filter.Args(calendar, ct) with { Limit = limit })).AsList();
    }

    private const string CountSql = $"""
        SELECT coalesce(sum(d.requests), 0)::bigint FROM usage_daily_models d WHERE {SpendFilter.AggregateWhere}
        """;

    /// <summary>How many usage rows the filter selects, counted from the aggregates (the drill-down's total).</summary>
    public async Task<long> CountAsync(SpendFilter filter, CancellationToken ct)
    {
        await using var connection = await _db.OpenConnectionAsync(ct);
        return await connection.ExecuteScalarAsync<long>(CountSql, filter.Args(calendar, ct));
    }

    private const string LatencySql = $"""
        SELECT count(*) AS requests,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY e.latency_ms) AS p50_ms,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY e.latency_ms) AS p95_ms
        FROM usage_events e WHERE {SpendFilter.UsageWhere}
        """;

    /// <summary>
    /// p50 and p95 of the whole-request latency over the filter's usage rows (errors and cache hits included), computed in the
    /// database; null when the range is longer than <see cref="MaxLatencyDays"/>.
    /// </summary>
    public async Task<LatencyStats?> LatencyAsync(SpendFilter filter, CancellationToken ct)
    {
        if (filter.Days > MaxLatencyDays) return null;
        await using var connection = await _db.OpenConnectionAsync(ct);
        return await connection.QuerySingleAsync<LatencyStats>(LatencySql, filter.Args(calendar, ct));
    }

    // Keys are revoked, never deleted; the outer join still shows a row whose key is gone, as the aggregates count it.
    private const string PageSql = $"""
        SELECT e.request_id, e.occurred_at, e.key_id, coalesce(k.name, '') AS key_name, e.end_user, e.asked_model, e.served_model, e.provider,
               e.prompt_tokens, e.completion_tokens, e.cached_tokens, e.cost_usd, e.latency_ms, e.ttft_ms, e.status, e.error_kind, e.streamed,
               e.attempts, e.fallback, e.routing_rule, e.downgraded_from, e.cache_hit
        FROM usage_events e LEFT JOIN api_keys k ON k.id = e.key_id
        WHERE {SpendFilter.UsageWhere}
        ORDER BY e.occurred_at DESC, e.request_id DESC
        OFFSET @offset LIMIT @limit
        """;

    /// <summary>One page of the filter's usage rows, newest first.</summary>
    public async Task<IReadOnlyList<UsageEvent>> UsagePageAsync(SpendFilter filter, int offset, int limit, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, MaxPageSize);
        await using var connection = await _db.OpenConnectionAsync(ct);
        return (await connection.QueryAsync<UsageEvent>(PageSql, filter.Args(calendar, ct) with { Offset = offset, Limit = limit })).AsList();
    }

    // One statement each (Dapper.AOT, which runs every call here, reads no multiple result sets); the range goes as dates.
    private const string ModelOptionsSql = "SELECT DISTINCT model FROM usage_daily_models WHERE day BETWEEN @from::date AND @to::date ORDER BY 1";
    private const string ProviderOptionsSql = "SELECT DISTINCT provider FROM usage_daily_models WHERE day BETWEEN @from::date AND @to::date ORDER BY 1";
    private const string TeamOptionsSql = "SELECT DISTINCT tag FROM api_keys CROSS JOIN LATERAL unnest(tags) AS t(tag) ORDER BY 1";

    /// <summary>Models and providers with use from <paramref name="from"/> to <paramref name="to"/>, and every tag a key carries.</summary>
    public async Task<SpendFilterOptions> FilterOptionsAsync(DateOnly from, DateOnly to, CancellationToken ct)
    {
        await using var connection = await _db.OpenConnectionAsync(ct);
        var models = (await connection.QueryAsync<string>(ModelOptionsSql, new { from, to, ct })).AsList();
        var providers = (await connection.QueryAsync<string>(ProviderOptionsSql, new { from, to, ct })).AsList();
        var teams = (await connection.QueryAsync<string>(TeamOptionsSql, ct)).AsList();
        return new SpendFilterOptions(models, providers, teams);
    }
}
