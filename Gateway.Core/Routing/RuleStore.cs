using System.Text.Json;
using Dapper;
using Npgsql;

namespace Gateway.Core.Routing;

/// <summary>Routing rules for the admin API and the seed file. Changes reach every instance through NOTIFY.</summary>
public sealed class RuleStore(NpgsqlDataSource db, TimeProvider time)
{
    private const string Select = """
        SELECT id, name, priority, enabled, match::text AS match_json, targets::text AS targets_json, fallbacks, created_at, updated_at
        FROM routing_rules
        """;

    public async Task<IReadOnlyList<RoutingRule>> ListAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<Row>(new CommandDefinition($"{Select} ORDER BY priority, name", cancellationToken: ct));
        return [.. rows.Select(r => r.ToRule())];
    }

    /// <summary>Creates or replaces the rule of that name; true when it was created.</summary>
    public async Task<(RoutingRule Rule, bool Created)> UpsertAsync(string name, RoutingRule rule, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        await using var connection = await db.OpenConnectionAsync(ct);
        var created = await connection.ExecuteScalarAsync<bool>(new CommandDefinition("""
            INSERT INTO routing_rules AS r (id, name, priority, enabled, match, targets, fallbacks, created_at, updated_at)
            VALUES (@Id, @name, @Priority, @Enabled, @Match::jsonb, @Targets::jsonb, @Fallbacks, @Now, @Now)
            ON CONFLICT (name) DO UPDATE SET priority = excluded.priority, enabled = excluded.enabled, match = excluded.match,
                targets = excluded.targets, fallbacks = excluded.fallbacks, updated_at = excluded.updated_at
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
            Now = now.UtcDateTime,
        }, cancellationToken: ct));
        var saved = await connection.QuerySingleAsync<Row>(new CommandDefinition($"{Select} WHERE name = @name", new { name }, cancellationToken: ct));
        return (saved.ToRule(), created);
    }

    public async Task<bool> DeleteAsync(string name, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.ExecuteAsync(new CommandDefinition("DELETE FROM routing_rules WHERE name = @name", new { name }, cancellationToken: ct)) > 0;
    }

#pragma warning disable CA1812 // instantiated by Dapper
    private sealed class Row
    {
        public Guid Id { get; init; }
        public string Name { get; init; } = "";
        public int Priority { get; init; }
        public bool Enabled { get; init; }
        public string MatchJson { get; init; } = "{}";
        public string TargetsJson { get; init; } = "[]";
        public string[] Fallbacks { get; init; } = [];
        public DateTime CreatedAt { get; init; }
        public DateTime UpdatedAt { get; init; }

        public RoutingRule ToRule() => new()
        {
            Id = Id, Name = Name, Priority = Priority, Enabled = Enabled,
            Match = JsonSerializer.Deserialize<RuleMatch>(MatchJson, RoutingRule.Json) ?? new RuleMatch(),
            Targets = JsonSerializer.Deserialize<List<RuleTarget>>(TargetsJson, RoutingRule.Json) ?? [],
            Fallbacks = Fallbacks, CreatedAt = CreatedAt, UpdatedAt = UpdatedAt,
        };
    }
#pragma warning restore CA1812
}
