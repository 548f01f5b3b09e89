using System.Text.Json;
using Dapper;
using Npgsql;

namespace Gateway.Core.Routing;

/// <summary>Routing rules for the admin API and the seed file. Changes reach every instance through NOTIFY.</summary>
public sealed class RuleStore(NpgsqlDataSource db, TimeProvider time)
{
    public async Task<IReadOnlyList<RoutingRule>> ListAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<RuleRow>(new CommandDefinition($"{RuleRow.Select} ORDER BY priority, name", cancellationToken: ct));
        return [.. rows.Select(r => r.ToRule())];
    }

    /// <summary>Creates or replaces the rule of that name; true when it was created.</summary>
    public async Task<(RoutingRule Rule, bool Created)> UpsertAsync(string name, RoutingRule rule, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        await using var connection = await db.OpenConnectionAsync(ct);
        var created = await connection.ExecuteScalarAsync<bool>(new CommandDefinition("""
            INSERT INTO routing_rules AS r (id, name, priority, enabled, match, targets, fallbacks, downgrade_model, injection_filter, created_at,
                                            updated_at)
            VALUES (@Id, @name, @Priority, @Enabled, @Match::jsonb, @Targets::jsonb, @Fallbacks, @DowngradeModel, @InjectionFilter, @Now, @Now)
            ON CONFLICT (name) DO UPDATE SET priority = excluded.priority, enabled = excluded.enabled, match = excluded.match,
                targets = excluded.targets, fallbacks = excluded.fallbacks,
                downgrade_model = excluded.downgrade_model, injection_filter = excluded.injection_filter, updated_at = excluded.updated_at
            RETURNING (xmax = 0)
            """, new
        {
            Id = Guid.CreateVersion7(now),
            name,
            rule.Priority,
            rule.Enabled,
            Match = JsonSerializer.Serialize(rule.Match, RoutingRule.Json),
            Targets = JsonSerializer.Serialize(rule.Targets, RoutingRule.Json),
            Fallbacks = rule.Fallbacks.ToArray(),
            rule.DowngradeModel,
            rule.InjectionFilter,
            Now = now.UtcDateTime,
        }, cancellationToken: ct));
        var saved = await connection.QuerySingleAsync<RuleRow>(new CommandDefinition($"{RuleRow.Select} WHERE name = @name", new { name }, cancellationToken: ct));
        return (saved.ToRule(), created);
    }

    public async Task<bool> DeleteAsync(string name, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.ExecuteAsync(new CommandDefinition("DELETE FROM routing_rules WHERE name = @name", new { name }, cancellationToken: ct)) > 0;
    }
}
