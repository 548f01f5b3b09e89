using System.Text.Json;
using System.Text.Json.Nodes;
using Dapper;
using Npgsql;

namespace Gateway.Core.Audit;

/// <summary>One change: who made it, when, to what, and the record before and after (secrets masked).</summary>
public sealed record AuditEntry
{
    public long Id { get; init; }
    public DateTime At { get; init; }
    public string Actor { get; init; } = "";
    public string Action { get; init; } = "";
    public string Entity { get; init; } = "";
    public string EntityId { get; init; } = "";
    /// <summary>
    /// The target's name as the change recorded it (the record's <c>name</c>, after the change or else before it), for
    /// targets known by an id (keys, admin tokens); still there once the target is deleted. Null when the record has none.
    /// </summary>
    public string? Name { get; init; }
    public string? Before { get; init; }
    public string? After { get; init; }
}

/// <summary>
/// The audit log of admin changes (admin app and admin REST API). Records are serialized as the admin API shows
/// them (snake_case) with every secret masked: an issued key, a provider's secret or encrypted secret reference.
/// </summary>
public sealed class AuditLog(NpgsqlDataSource db, TimeProvider time)
{
    /// <summary>The actor recorded for calls authenticated with the master key.</summary>
    public const string MasterKeyActor = "admin-api (master key)";

    private static readonly HashSet<string> SecretFields = new(StringComparer.OrdinalIgnoreCase) { "key", "secret", "password", "api_key" };

    public async Task RecordAsync(string actor, string action, string entity, string entityId, object? before, object? after, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await RecordAsync(connection, null, actor, action, entity, entityId, before, after, ct);
    }

    /// <summary>Records a change on the connection (and in the transaction, if any) that made it: for the stores.</summary>
    internal async Task RecordAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string actor, string action, string entity,
        string entityId, object? before, object? after, CancellationToken ct) =>
        await connection.ExecuteAsync("""
            INSERT INTO audit_log (at, actor, action, entity, entity_id, before, after)
            VALUES (@at, @actor, @action, @entity, @entityId, @before::jsonb, @after::jsonb)
            """, new { at = time.GetUtcNow().UtcDateTime, actor, action, entity, entityId, before = Masked(before), after = Masked(after), ct },
            transaction);

    /// <summary>Newest first, filtered by any of: entity, actor, a text in the entity id or the records.</summary>
    public async Task<(IReadOnlyList<AuditEntry> Items, int Total)> SearchAsync(string? entity, string? actor, string? text, int offset, int limit,
        CancellationToken ct)
    {
        const string Where = """
            WHERE (@entity::text IS NULL OR entity = @entity) AND (@actor::text IS NULL OR actor = @actor)
              AND (@text::text IS NULL OR strpos(lower(entity_id || ' ' || coalesce(before::text, '') || ' ' || coalesce(after::text, '')), lower(@text)) > 0)
            """;
        var parameters = new { entity = Blank(entity), actor = Blank(actor), text = Blank(text), offset, limit, ct };
        await using var connection = await db.OpenConnectionAsync(ct);
        var total = await connection.ExecuteScalarAsync<int>($"SELECT count(*) FROM audit_log {Where}", parameters);
        var rows = await connection.QueryAsync<AuditEntry>($"""
            SELECT id, at, actor, action, entity, entity_id, coalesce(after ->> 'name', before ->> 'name') AS name,
                   before::text AS before, after::text AS after
            FROM audit_log {Where}
            ORDER BY at DESC, id DESC OFFSET @offset LIMIT @limit
            """, parameters);
        return (rows.AsList(), total);
    }

    private static string? Blank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    internal static string? Masked(object? record)
    {
        if (record is null) return null;
        var node = JsonSerializer.SerializeToNode(record, Admin.AdminJson.Options.GetTypeInfo(record.GetType()));
        Mask(node);
        return node?.ToJsonString();
    }

    private static void Mask(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var (name, value) in obj.ToList())
                {
                    if (value is JsonValue v && v.TryGetValue<string>(out var text) && text.Length > 0
                        && (SecretFields.Contains(name) || name == "secret_ref" && text.StartsWith("enc:", StringComparison.Ordinal)))
                        obj[name] = "***";
                    else
                        Mask(value);
                }
                break;
            case JsonArray array:
                foreach (var item in array) Mask(item);
                break;
        }
    }
}
