using Dapper;
using Npgsql;

namespace Gateway.Core.Reports;

/// <summary>What a spend report groups by.</summary>
public enum SpendGroup { Key, Team, Day, Model, Provider }

/// <summary>One group's spend over a report's date range. <c>KeyId</c> is set when grouped by key.</summary>
public sealed record SpendRow(string Group, Guid? KeyId, long Requests, long Errors, long PromptTokens, long CompletionTokens, decimal CostUsd);

/// <summary>One metered request, as finance exports it. Times are ISO 8601 UTC.</summary>
public sealed record UsageRow(
    Guid RequestId, string OccurredAt, Guid KeyId, string KeyName, string? EndUser, string? AskedModel, string? ServedModel, string? Provider,
    int PromptTokens, int CompletionTokens, int CachedTokens, int CacheWriteTokens, int CacheWrite1hTokens, decimal CostUsd, int LatencyMs, short Status,
    bool CacheHit, string? DowngradedFrom);

/// <summary>One FOCUS usage charge: a day's use of one model at one provider through one key.</summary>
public sealed class FocusCharge
{
    public DateOnly Day { get; init; }
    public Guid KeyId { get; init; }
    public string KeyName { get; init; } = "";
    public string[] KeyTags { get; init; } = [];
    public string Provider { get; init; } = "";
    public string Model { get; init; } = "";
    public long Requests { get; init; }
    public long Tokens { get; init; }
    /// <summary>Prompt tokens read from the providers' prompt caches.</summary>
    public long CachedTokens { get; init; }
    /// <summary>Prompt tokens written to the providers' prompt caches (5-minute entries, or no lifetime said).</summary>
    public long CacheWriteTokens { get; init; }
    /// <summary>Prompt tokens written to 1-hour cache entries (Anthropic).</summary>
    public long CacheWrite1hTokens { get; init; }
    public decimal CostUsd { get; init; }
}

/// <summary>
/// Spend reports (Dapper). Spend by key, team, day, model and provider and the FOCUS export read the daily
/// aggregates (<c>usage_daily</c> per key, <c>usage_daily_models</c> per key, provider and model), so they stay fast
/// at tens of millions of usage rows; only the raw usage export reads the usage rows of the range (partition-pruned by time).
/// Days are budget days (<see cref="Budgets.BudgetCalendar"/>: UTC unless configured), both ends included; a
/// row counts on the day stored with it, so every grouping of a range adds up to the same total.
/// </summary>
public sealed class SpendReports(Persistence.ReportsDatabase reports, Budgets.BudgetCalendar calendar)
{
    private readonly NpgsqlDataSource _db = reports.DataSource;

    public const int MaxDays = 366;

    private const string Sums = """
        sum(d.requests)::bigint AS requests, sum(d.errors)::bigint AS errors, sum(d.prompt_tokens)::bigint AS prompt_tokens,
        sum(d.completion_tokens)::bigint AS completion_tokens, sum(d.cost_usd) AS cost_usd
        """;

    private const string SpendByKey = $"""
        SELECT k.name AS "group", d.key_id, {Sums} FROM usage_daily d JOIN api_keys k ON k.id = d.key_id
        WHERE d.day BETWEEN @from::date AND @to::date GROUP BY k.name, d.key_id
        ORDER BY cost_usd DESC, "group"
        """;

    // A key with several tags counts toward each; keys with none are '(untagged)'.
    private const string SpendByTeam = $"""
        SELECT t.tag AS "group", NULL::uuid AS key_id, {Sums} FROM usage_daily d JOIN api_keys k ON k.id = d.key_id
        CROSS JOIN LATERAL unnest(CASE WHEN cardinality(k.tags) = 0 THEN ARRAY['(untagged)'] ELSE k.tags END) AS t(tag)
        WHERE d.day BETWEEN @from::date AND @to::date GROUP BY t.tag
        ORDER BY cost_usd DESC, "group"
        """;

    private const string SpendByDay = $"""
        SELECT to_char(d.day, 'YYYY-MM-DD') AS "group", NULL::uuid AS key_id, {Sums} FROM usage_daily d
        WHERE d.day BETWEEN @from::date AND @to::date GROUP BY d.day
        ORDER BY cost_usd DESC, "group"
        """;

    private const string SpendByModel = $"""
        SELECT d.model AS "group", NULL::uuid AS key_id, {Sums} FROM usage_daily_models d
        WHERE d.day BETWEEN @from::date AND @to::date GROUP BY d.model
        ORDER BY cost_usd DESC, "group"
        """;

    private const string SpendByProvider = $"""
        SELECT d.provider AS "group", NULL::uuid AS key_id, {Sums} FROM usage_daily_models d
        WHERE d.day BETWEEN @from::date AND @to::date GROUP BY d.provider
        ORDER BY cost_usd DESC, "group"
        """;

    public async Task<IReadOnlyList<SpendRow>> SpendAsync(SpendGroup by, DateOnly from, DateOnly to, CancellationToken ct)
    {
        await using var connection = await _db.OpenConnectionAsync(ct);
        var range = new { from, to, ct };
        // One call per grouping, each with constant SQL: Dapper.AOT binds constant SQL at build time (with a non-constant
        // command and a cancellation token, Dapper.AOT 1.1.0 generates code that does not compile).
        var rows = by switch
        {
            SpendGroup.Key => await connection.QueryAsync<SpendRow>(SpendByKey, range),
            SpendGroup.Team => await connection.QueryAsync<SpendRow>(SpendByTeam, range),
            SpendGroup.Day => await connection.QueryAsync<SpendRow>(SpendByDay, range),
            SpendGroup.Model => await connection.QueryAsync<SpendRow>(SpendByModel, range),
            _ => await connection.QueryAsync<SpendRow>(SpendByProvider, range),
        };
        return rows.AsList();
    }

    /// <summary>The range's usage rows (of one key, when given), oldest first, streamed from the database (never all in memory).</summary>
    public IAsyncEnumerable<UsageRow> UsageAsync(DateOnly from, DateOnly to, Guid? keyId, CancellationToken ct) =>
        UsageAsync(new SpendFilter(from, to, keyId), ct);

    private const string UsageSql = $"""
        SELECT e.request_id, to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS occurred_at, e.key_id,
               k.name AS key_name, e.end_user, e.asked_model, e.served_model, e.provider, e.prompt_tokens, e.completion_tokens,
               e.cached_tokens, e.cache_write_tokens, e.cache_write_1h_tokens, e.cost_usd, e.latency_ms, e.status, e.cache_hit, e.downgraded_from
        FROM usage_events e JOIN api_keys k ON k.id = e.key_id
        WHERE {SpendFilter.UsageWhere}
        ORDER BY e.occurred_at, e.request_id
        """;

    /// <summary>The usage rows a filter selects, oldest first, streamed from the database (never all in memory).</summary>
    public async IAsyncEnumerable<UsageRow> UsageAsync(SpendFilter filter, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        await using var connection = await _db.OpenConnectionAsync(ct);
        var rows = connection.QueryUnbufferedAsync<UsageRow>(UsageSql, filter.Args(calendar, ct));
        await foreach (var row in rows.WithCancellation(ct)) yield return row;
    }

    /// <summary>
    /// FOCUS usage charges: one per budget day, key, provider and served model, oldest first, streamed from the database.
    /// </summary>
    public async IAsyncEnumerable<FocusCharge> FocusAsync(DateOnly from, DateOnly to,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        await using var connection = await _db.OpenConnectionAsync(ct);
        var rows = connection.QueryUnbufferedAsync<FocusCharge>("""
            SELECT d.day, d.key_id, k.name AS key_name, k.tags AS key_tags, d.provider, d.model,
                   d.requests, d.prompt_tokens + d.completion_tokens AS tokens, d.cached_tokens, d.cache_write_tokens, d.cache_write_1h_tokens,
                   d.cost_usd
            FROM usage_daily_models d JOIN api_keys k ON k.id = d.key_id
            WHERE d.day BETWEEN @from::date AND @to::date
            ORDER BY d.day, k.name, d.key_id, d.provider, d.model
            """, new { from, to });
        await foreach (var row in rows.WithCancellation(ct)) yield return row;
    }
}
