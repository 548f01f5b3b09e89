using System.Text.Json;
using Dapper;
using Gateway.Core.Audit;
using Npgsql;

namespace Gateway.Core.Routing;

/// <summary>
/// Routing rules for the admin API, the admin app and the seed file. Changes reach every instance through NOTIFY. Changes an
/// admin makes are recorded in the audit log under the actor the caller names; the seed file's are not.
/// </summary>
public sealed class RuleStore(NpgsqlDataSource db, AuditLog audit, TimeProvider time)
{
    private const string Entity = "route";

    public async Task<IReadOnlyList<RoutingRule>> ListAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<RuleRow>($"{RuleRow.Select} ORDER BY priority, name", ct);
        return [.. rows.Select(r => r.ToRule())];
    }

    /// <summary>Creates or replaces the rule of that name; true when it was created.</summary>
    public async Task<(RoutingRule Rule, bool Created)> UpsertAsync(string name, RoutingRule rule, string actor, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var before = await FindAsync(connection, name, ct);
        var (saved, created) = await UpsertAsync(connection, name, rule, ct);
        await audit.RecordAsync(connection, null, actor, created ? AuditActions.RouteCreate : AuditActions.RouteUpdate, Entity, name, before, saved, ct);
        return (saved, created);
    }

    /// <summary>Creates or replaces the seed file's rules by name. Not audited: it is configuration.</summary>
    public async Task ApplySeedAsync(IEnumerable<RoutingRule> rules, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        foreach (var rule in rules) await UpsertAsync(connection, rule.Name, rule, ct);
    }

    private async Task<(RoutingRule Rule, bool Created)> UpsertAsync(NpgsqlConnection connection, string name, RoutingRule rule, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        // Serialized first: Dapper.AOT's generator cannot see the JSON generator's output, so an args member typed through
        // RoutingJson would leave this call on vanilla Dapper.
        string match = JsonSerializer.Serialize(rule.Match, RoutingJson.Default.RuleMatch);
        string targets = JsonSerializer.Serialize(rule.Targets.ToList(), RoutingJson.Default.ListRuleTarget);
        var created = await connection.ExecuteScalarAsync<bool>("""
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
            Match = match,
            Targets = targets,
            Fallbacks = rule.Fallbacks.ToArray(),
            rule.DowngradeModel,
            rule.InjectionFilter,
            Now = now.UtcDateTime,
            ct,
        });
        return ((await FindAsync(connection, name, ct))!, created);
    }

    public async Task<bool> DeleteAsync(string name, string actor, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var before = await FindAsync(connection, name, ct);
        if (await connection.ExecuteAsync("DELETE FROM routing_rules WHERE name = @name", new { name, ct }) == 0)
            return false;
        await audit.RecordAsync(connection, null, actor, AuditActions.RouteDelete, Entity, name, before, null, ct);
        return true;
    }

    private static async Task<RoutingRule?> FindAsync(NpgsqlConnection connection, string name, CancellationToken ct) =>
        (await connection.QuerySingleOrDefaultAsync<RuleRow>($"{RuleRow.Select} WHERE name = @name", new { name, ct }))?.ToRule();
}
