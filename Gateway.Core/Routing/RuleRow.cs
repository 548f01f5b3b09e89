using System.Text.Json;

namespace Gateway.Core.Routing;

/// <summary>A <c>routing_rules</c> row as Dapper reads it (JSON columns as text), for the admin store and the in-memory rule book.</summary>
#pragma warning disable CA1812 // instantiated by Dapper
internal sealed class RuleRow
{
    public const string Select = """
        SELECT id, name, priority, enabled, match::text AS match_json, targets::text AS targets_json, fallbacks, downgrade_model, injection_filter, created_at, updated_at
        FROM routing_rules
        """;

    public Guid Id { get; init; }
    public string Name { get; init; } = "";
    public int Priority { get; init; }
    public bool Enabled { get; init; }
    public string MatchJson { get; init; } = "{}";
    public string TargetsJson { get; init; } = "[]";
    public string[] Fallbacks { get; init; } = [];
    public string? DowngradeModel { get; init; }
    public string? InjectionFilter { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }

    public RoutingRule ToRule() => new()
    {
        Id = Id, Name = Name, Priority = Priority, Enabled = Enabled,
        Match = JsonSerializer.Deserialize(MatchJson, RoutingJson.Default.RuleMatch) ?? new RuleMatch(),
        Targets = JsonSerializer.Deserialize(TargetsJson, RoutingJson.Default.ListRuleTarget) ?? [],
        Fallbacks = Fallbacks, DowngradeModel = DowngradeModel, InjectionFilter = InjectionFilter, CreatedAt = CreatedAt, UpdatedAt = UpdatedAt,
    };
}
#pragma warning restore CA1812
