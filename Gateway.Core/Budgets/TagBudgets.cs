using System.Collections.Frozen;
using Dapper;
using Gateway.Core.Audit;
using Npgsql;

namespace Gateway.Core.Budgets;

/// <summary>A team's (tag's) budget: every key with the tag spends from it.</summary>
public sealed record TagBudget(string Tag, decimal? DailyBudgetUsd, decimal? MonthlyBudgetUsd);

/// <summary>
/// Tag budgets, in memory (reloaded on NOTIFY), and the tags' spend, re-read at most every two seconds
/// (soft, like monthly budgets), so a request costs no database round trip most of the time. Changes are recorded in the audit
/// log under the actor the caller names.
/// </summary>
public sealed class TagBudgets(NpgsqlDataSource db, AuditLog audit, TimeProvider time)
{
    private const string Entity = "tag_budget";
    private const string Columns = "tag, daily_budget_usd, monthly_budget_usd";

    private static readonly TimeSpan SpendRefresh = TimeSpan.FromSeconds(2);

    private FrozenDictionary<string, TagBudget> _budgets = FrozenDictionary<string, TagBudget>.Empty;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Tag, DateOnly From, DateOnly To), (decimal Spent, long ReadAt)> _spent = new();

    public async Task ReloadAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<TagBudget>($"SELECT {Columns} FROM tag_budgets", ct);
        Interlocked.Exchange(ref _budgets, rows.ToFrozenDictionary(b => b.Tag, StringComparer.Ordinal));
    }

    public IReadOnlyCollection<TagBudget> All => _budgets.Values;

    /// <summary>Whether any of a key's tags has a budget.</summary>
    public bool Covers(IReadOnlyCollection<string> tags)
    {
        var budgets = _budgets;
        if (tags.Count == 0 || budgets.Count == 0) return false;
        foreach (var tag in tags)
            if (budgets.ContainsKey(tag)) return true;
        return false;
    }

    /// <summary>The first of a key's tags whose daily or monthly budget is spent, or null.</summary>
    public async Task<string?> SpentTagAsync(IEnumerable<string> tags, DateOnly day)
    {
        foreach (var tag in tags)
        {
            if (!_budgets.TryGetValue(tag, out var budget)) continue;
            if (budget.DailyBudgetUsd is { } daily && await SpentAsync(tag, day, day) >= daily) return tag;
            var first = new DateOnly(day.Year, day.Month, 1);
            if (budget.MonthlyBudgetUsd is { } monthly && await SpentAsync(tag, first, first.AddMonths(1).AddDays(-1)) >= monthly) return tag;
        }
        return null;
    }

    private async Task<decimal> SpentAsync(string tag, DateOnly from, DateOnly to)
    {
        if (_spent.TryGetValue((tag, from, to), out var known) && time.GetElapsedTime(known.ReadAt) < SpendRefresh) return known.Spent;
        var spent = await BudgetLedger.ReadOrKnownAsync(known.Spent, async token =>
        {
            await using var connection = await db.OpenConnectionAsync(token);
            return await connection.ExecuteScalarAsync<decimal?>("""
                SELECT sum(d.cost_usd) FROM usage_daily d JOIN api_keys k ON k.id = d.key_id
                WHERE @tag = ANY (k.tags) AND d.day BETWEEN @from::date AND @to::date
                """, new { tag, from, to, token }) ?? 0;
        });
        _spent[(tag, from, to)] = (spent, time.GetTimestamp());
        return spent;
    }

    public async Task<TagBudget> UpsertAsync(TagBudget budget, string actor, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var before = await FindAsync(connection, budget.Tag, ct);
        var saved = await connection.QuerySingleAsync<TagBudget>($"""
            INSERT INTO tag_budgets (tag, daily_budget_usd, monthly_budget_usd, updated_at) VALUES (@Tag, @DailyBudgetUsd, @MonthlyBudgetUsd, now())
            ON CONFLICT (tag) DO UPDATE SET daily_budget_usd = excluded.daily_budget_usd, monthly_budget_usd = excluded.monthly_budget_usd,
                updated_at = excluded.updated_at
            RETURNING {Columns}
            """, new { budget.Tag, budget.DailyBudgetUsd, budget.MonthlyBudgetUsd, ct });
        await audit.RecordAsync(connection, null, actor, AuditActions.TagBudgetSet, Entity, budget.Tag, before, saved, ct);
        return saved;
    }

    public async Task<bool> DeleteAsync(string tag, string actor, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var before = await FindAsync(connection, tag, ct);
        if (await connection.ExecuteAsync("DELETE FROM tag_budgets WHERE tag = @tag", new { tag, ct }) == 0)
            return false;
        await audit.RecordAsync(connection, null, actor, AuditActions.TagBudgetDelete, Entity, tag, before, null, ct);
        return true;
    }

    private static Task<TagBudget?> FindAsync(NpgsqlConnection connection, string tag, CancellationToken ct) =>
        connection.QuerySingleOrDefaultAsync<TagBudget>($"SELECT {Columns} FROM tag_budgets WHERE tag = @tag", new { tag, ct });
}
