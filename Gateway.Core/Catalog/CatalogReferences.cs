using Dapper;
using Gateway.Core.Routing;
using Npgsql;

namespace Gateway.Core.Catalog;

/// <summary>A name a model or rule refers to that does not exist: the form field, the JSON field, and what to tell the admin.</summary>
/// <param name="Field">The request's property path, as FluentValidation names it (<c>Targets[0].Model</c>), for the admin app's forms.</param>
/// <param name="Param">The snake_case JSON field (<c>targets[0].model</c>), for the admin API's <c>param</c>.</param>
public sealed record MissingReference(string Field, string Param, string Message);

/// <summary>
/// Checks that a model's provider and fallbacks, and a rule's targets, fallbacks and downgrade model, exist (enabled or
/// not) before either is saved: a rule that routes to nothing would otherwise be accepted and only fail at request time
/// ("The model 'auto' does not exist"). Providers come first, then models, then rules; a model that falls back to a model
/// not created yet is saved without that fallback and updated after. The admin API and the admin app both call this; the
/// seed file checks against the database plus its own entries (its models may fall back to ones later in the file).
/// Only names are checked: the match's <c>models</c> may be virtual aliases (<c>auto</c>) that no model has.
/// </summary>
public sealed class CatalogReferences(NpgsqlDataSource db)
{
    /// <summary>The first reference of <paramref name="request"/> (a model saved as <paramref name="alias"/>) that does not exist.</summary>
    public async Task<MissingReference?> CheckModelAsync(string alias, ModelRequest request, CancellationToken ct,
        IReadOnlySet<string>? alsoDefinedModels = null, IReadOnlySet<string>? alsoDefinedProviders = null)
    {
        var (providers, models) = await ExistingAsync(request.Provider is null ? [] : [request.Provider],
            [.. (request.Fallbacks ?? []).Where(f => f != alias)], ct);
        if (request.Provider is { } provider && !providers.Contains(provider) && alsoDefinedProviders?.Contains(provider) != true)
            return new("Provider", "provider", $"The model '{alias}' names the provider '{provider}', which does not exist: create it first (POST /admin/providers), or name an existing one.");
        var fallbacks = request.Fallbacks ?? [];
        for (var i = 0; i < fallbacks.Count; i++)
        {
            if (fallbacks[i] != alias && !models.Contains(fallbacks[i]) && alsoDefinedModels?.Contains(fallbacks[i]) != true)
                return new("Fallbacks", $"fallbacks[{i}]", NoModel($"The model '{alias}'", "falls back to", fallbacks[i]));
        }
        return null;
    }

    /// <summary>The first model <paramref name="rule"/> sends requests to (target, fallback, downgrade model) that does not exist.</summary>
    public async Task<MissingReference?> CheckRuleAsync(RoutingRule rule, CancellationToken ct, IReadOnlySet<string>? alsoDefinedModels = null)
    {
        var named = rule.Targets.Select(t => t.Model).Concat(rule.Fallbacks);
        if (rule.DowngradeModel is { } downgrade) named = named.Append(downgrade);
        var (_, models) = await ExistingAsync([], [.. named], ct);
        bool Missing(string alias) => !models.Contains(alias) && alsoDefinedModels?.Contains(alias) != true;
        for (var i = 0; i < rule.Targets.Count; i++)
        {
            if (Missing(rule.Targets[i].Model))
                return new($"Targets[{i}].Model", $"targets[{i}].model", NoModel("The rule", "targets", rule.Targets[i].Model));
        }
        for (var i = 0; i < rule.Fallbacks.Count; i++)
        {
            if (Missing(rule.Fallbacks[i])) return new("Fallbacks", $"fallbacks[{i}]", NoModel("The rule", "falls back to", rule.Fallbacks[i]));
        }
        return rule.DowngradeModel is { } down && Missing(down)
            ? new("DowngradeModel", "downgrade_model", NoModel("The rule", "downgrades to", down))
            : null;
    }

    private static string NoModel(string subject, string verb, string alias) =>
        $"{subject} {verb} the model '{alias}', which does not exist: create it first (POST /admin/models), or name an existing one.";

    private async Task<(HashSet<string> Providers, HashSet<string> Models)> ExistingAsync(string[] providers, string[] models, CancellationToken ct)
    {
        if (providers.Length == 0 && models.Length == 0) return ([], []);
        await using var connection = await db.OpenConnectionAsync(ct);
        // The columns are named: rows are read into ExistingName by column name.
        var rows = await connection.QueryAsync<ExistingName>("""
            SELECT 'p' AS kind, name FROM providers WHERE name = ANY(@providers)
            UNION ALL
            SELECT 'm', alias FROM models WHERE alias = ANY(@models)
            """, new { providers, models, ct });
        var found = rows.ToLookup(r => r.Kind, r => r.Name);
        return ([.. found["p"]], [.. found["m"]]);
    }

    /// <summary>A provider (<c>p</c>) or model (<c>m</c>) name that exists.</summary>
    internal sealed record ExistingName(string Kind, string Name);
}
