using System.Text.Json.Nodes;
using System.Text.Json;
using FluentValidation;
using Gateway.Api.Auth;
using Gateway.Api.Errors;
using Gateway.Core.Admin;
using Gateway.Core.Catalog;
using Gateway.Core.Keys;
using Gateway.Core.Budgets;
using Gateway.Core.Routing;
using Gateway.Core.Errors;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Gateway.Api.Endpoints.Admin;

/// <summary>
/// The admin REST API under <c>/admin</c>, guarded by the master key: keys, providers, models.
/// JSON is snake_case. Changes reach every gateway instance through NOTIFY within a second.
/// </summary>
internal static class AdminEndpoints
{
    private static readonly CreateKeyRequestValidator KeyRules = new();
    private static readonly ModelRequestValidator ModelRules = new();
    private static readonly RoutingRuleValidator RuleRules = new();

    public static RouteGroupBuilder MapAdmin(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/admin").RequireMasterKey();

        admin.MapPost("/keys", async Task<IResult> (JsonObject body, KeyStore keys, CancellationToken ct) =>
        {
            if (KeyRequest(new JsonObject(), body, out var wrongType) is not { } request) return wrongType;
            if (Invalid(KeyRules, request) is { } bad) return bad;
            var created = await keys.CreateAsync(request, AdminCaller.Name, ct);
            return TypedResults.Created($"/admin/keys/{created.Id}", created);
        });
        admin.MapGet("/keys", async (KeyStore keys, CancellationToken ct) => TypedResults.Ok(await keys.ListAsync(ct)));
        admin.MapGet("/keys/{id:guid}", async Task<IResult> (Guid id, KeyStore keys, CancellationToken ct) =>
            await keys.GetAsync(id, ct) is { } key ? TypedResults.Ok(key) : NotFound("key", id.ToString()));
        // A JSON merge patch (RFC 7396): fields present are set, null clears, absent ones keep their value.
        admin.MapPatch("/keys/{id:guid}", async Task<IResult> (Guid id, JsonObject body, KeyStore keys, CancellationToken ct) =>
        {
            if (await keys.GetAsync(id, ct) is not { } current) return NotFound("key", id.ToString());
            if (KeyRequest(JsonSerializer.SerializeToNode(current, AdminJson.Info<KeyView>())!.AsObject(), body, out var wrongType) is not { } request)
                return wrongType;
            if (Invalid(KeyRules, request) is { } bad) return bad;
            if (await keys.UpdateAsync(id, request, AdminCaller.Name, ct) is not { } updated) return NotFound("key", id.ToString());
            return TypedResults.Ok(updated);
        });
        admin.MapPost("/keys/{id:guid}/revoke", async Task<IResult> (Guid id, KeyStore keys, CancellationToken ct) =>
            await keys.RevokeAsync(id, AdminCaller.Name, ct) is { } revoked ? TypedResults.Ok(revoked) : NotFound("key", id.ToString()));
        // A new secret for the same key (settings and history stay); the old one stops working within a second.
        admin.MapPost("/keys/{id:guid}/rotate", async Task<IResult> (Guid id, KeyStore keys, CancellationToken ct) =>
            await keys.RotateAsync(id, AdminCaller.Name, ct) is { } rotated ? TypedResults.Ok(rotated) : NotFound("live key", id.ToString()));

        admin.MapGet("/providers", async (CatalogStore catalog, CancellationToken ct) => TypedResults.Ok(await catalog.ListProvidersAsync(ct)));
        admin.MapPost("/providers", async Task<IResult> (ProviderRequest request, CatalogStore catalog, ProviderRequestValidator rules,
            CancellationToken ct) =>
        {
            if (Invalid(rules, request) is { } bad) return bad;
            if (await catalog.CreateProviderAsync(request, AdminCaller.Name, ct) is not { } created)
                return OpenAIResults.Error(new GatewayError(409, $"A provider named '{request.Name}' exists; use PUT to change it.",
                    "invalid_request_error", "name", "conflict"));
            return TypedResults.Created($"/admin/providers/{created.Name}", created);
        });
        admin.MapPut("/providers/{name}", async Task<IResult> (string name, ProviderRequest request, CatalogStore catalog, ProviderRequestValidator rules,
            CancellationToken ct) =>
        {
            request = request with { Name = name };
            if (Invalid(rules, request) is { } bad) return bad;
            if (await catalog.UpdateProviderAsync(name, request, AdminCaller.Name, ct) is not { } updated) return NotFound("provider", name);
            return TypedResults.Ok(updated);
        });

        admin.MapGet("/models", async (CatalogStore catalog, CancellationToken ct) => TypedResults.Ok(await catalog.ListModelsAsync(ct)));
        admin.MapPost("/models", (ModelRequest request, CatalogStore catalog, CatalogReferences references, CancellationToken ct) =>
            UpsertModelAsync(request.Alias ?? "", request, catalog, references, ct));
        admin.MapPut("/models/{**alias}", (string alias, ModelRequest request, CatalogStore catalog, CatalogReferences references,
            CancellationToken ct) => UpsertModelAsync(alias, request with { Alias = alias }, catalog, references, ct));
        admin.MapGet("/budgets/tags", (TagBudgets budgets) => TypedResults.Ok(budgets.All.OrderBy(b => b.Tag, StringComparer.Ordinal).ToList()));
        admin.MapPut("/budgets/tags/{tag}", async Task<IResult> (string tag, TagBudget budget, TagBudgets budgets, CancellationToken ct) =>
        {
            if (string.IsNullOrWhiteSpace(tag))
                return OpenAIResults.Error(GatewayError.BadRequest("The tag must not be empty.", "tag", "invalid_value"));
            foreach (var (field, amount) in (ReadOnlySpan<(string, decimal?)>)[("daily_budget_usd", budget.DailyBudgetUsd), ("monthly_budget_usd", budget.MonthlyBudgetUsd)])
            {
                if (MoneyAmount.Problem(field, amount, 1_000_000_000m) is { } problem)
                    return OpenAIResults.Error(GatewayError.BadRequest(problem, field, "invalid_value"));
            }
            return TypedResults.Ok(await budgets.UpsertAsync(budget with { Tag = tag }, AdminCaller.Name, ct));
        });
        admin.MapDelete("/budgets/tags/{tag}", async Task<IResult> (string tag, TagBudgets budgets, CancellationToken ct) =>
            await budgets.DeleteAsync(tag, AdminCaller.Name, ct) ? TypedResults.NoContent() : NotFound("tag budget", tag));
        admin.MapGet("/routes", async (RuleStore rules, CancellationToken ct) => TypedResults.Ok(await rules.ListAsync(ct)));
        admin.MapPost("/routes", (RoutingRule rule, RuleStore rules, RuleBook book, CatalogReferences references, CancellationToken ct) =>
            UpsertRuleAsync(rule.Name, rule, rules, book, references, ct));
        admin.MapPut("/routes/{name}", (string name, RoutingRule rule, RuleStore rules, RuleBook book, CatalogReferences references,
            CancellationToken ct) => UpsertRuleAsync(name, rule with { Name = name }, rules, book, references, ct));
        admin.MapDelete("/routes/{name}", async Task<IResult> (string name, RuleStore rules, RuleBook book, CancellationToken ct) =>
        {
            if (!await rules.DeleteAsync(name, AdminCaller.Name, ct)) return NotFound("routing rule", name);
            await book.ReloadAsync(ct);
            return TypedResults.NoContent();
        });
        admin.MapPost("/routes/test", (RouteTestRequest test, RouteTester tester) =>
        {
            var (result, failure) = tester.Test(System.Text.Encoding.UTF8.GetBytes(test.Request.GetRawText()), test.KeyId, test.Headers);
            return failure is not null ? OpenAIResults.Error(failure) : TypedResults.Ok(result);
        });
        // Admin tokens: only the master key may issue or revoke them.
        admin.MapPost("/tokens", async Task<IResult> (AdminTokenRequest request, AdminTokens tokens, CancellationToken ct) =>
        {
            if (!AdminCaller.IsMasterKey) return OpenAIResults.Error(MasterKeyOnly);
            if (string.IsNullOrWhiteSpace(request.Name) || request.Name.Length > 100)
                return OpenAIResults.Error(GatewayError.BadRequest("'name' is required (at most 100 characters).", "name", "invalid_value"));
            if (await tokens.CreateAsync(request.Name.Trim(), AdminCaller.Name, ct) is not var (token, view))
                return OpenAIResults.Error(new GatewayError(409, $"An admin token named '{request.Name}' exists.", "invalid_request_error", "name", "conflict"));
            return TypedResults.Created($"/admin/tokens/{view.Id}", new CreatedAdminToken(view.Id, view.Name, view.Prefix, view.CreatedAt, token));
        });
        admin.MapGet("/tokens", async (AdminTokens tokens, CancellationToken ct) => TypedResults.Ok(await tokens.ListAsync(ct)));
        admin.MapPost("/tokens/{id:guid}/revoke", async Task<IResult> (Guid id, AdminTokens tokens, CancellationToken ct) =>
        {
            if (!AdminCaller.IsMasterKey) return OpenAIResults.Error(MasterKeyOnly);
            if (await tokens.RevokeAsync(id, AdminCaller.Name, ct) is not { } revoked) return NotFound("admin token", id.ToString());
            return TypedResults.Ok(revoked);
        });
        admin.MapReports();
        return admin;
    }

    private static readonly GatewayError MasterKeyOnly = new(403, "Only the master key may manage admin tokens.", "invalid_request_error", null,
        "master_key_required");

    private static async Task<IResult> UpsertRuleAsync(string name, RoutingRule rule, RuleStore rules, RuleBook book, CatalogReferences references,
        CancellationToken ct)
    {
        if (Invalid(RuleRules, rule with { Name = name }) is { } bad) return bad;
        if (await references.CheckRuleAsync(rule, ct) is { } missing) return Missing(missing);
        var (saved, created) = await rules.UpsertAsync(name, rule, AdminCaller.Name, ct);
        // This instance applies the change before answering, so a script's next call (the route tester, a request) sees it;
        // other instances get it through NOTIFY within a second.
        await book.ReloadAsync(ct);
        return created ? TypedResults.Created($"/admin/routes/{saved.Name}", saved) : TypedResults.Ok(saved);
    }

    private static async Task<IResult> UpsertModelAsync(string alias, ModelRequest request, CatalogStore catalog, CatalogReferences references,
        CancellationToken ct)
    {
        if (Invalid(ModelRules, request) is { } bad) return bad;
        if (await references.CheckModelAsync(alias, request, ct) is { } missing) return Missing(missing);
        var (model, created) = await catalog.UpsertModelAsync(alias, request, AdminCaller.Name, ct);
        if (model is null) return NotFound("provider", request.Provider!);
        return created ? TypedResults.Created($"/admin/models/{model.Alias}", model) : TypedResults.Ok(model);
    }

    /// <summary>
    /// A key request: <paramref name="patch"/>'s fields over <paramref name="current"/>'s. Field names may be snake_case or
    /// camelCase, and <c>hardLimitUsd</c>/<c>hard_limit_usd</c> are accepted for <c>hard_cap_usd</c>. Null when a field has the
    /// wrong type, with <paramref name="wrongType"/> the 400 that names it.
    /// </summary>
    private static CreateKeyRequest? KeyRequest(JsonObject current, JsonObject patch, out IResult wrongType)
    {
        foreach (var (name, value) in patch)
        {
            var snake = ToSnake(name);
            current[snake is "hard_limit_usd" ? "hard_cap_usd" : snake] = value?.DeepClone();
        }
        try
        {
            wrongType = null!;
            return current.Deserialize(AdminJson.Info<CreateKeyRequest>());
        }
        catch (JsonException ex)
        {
            // The reader's path ("$.cache_scope", "$.budget_tiers[0].at_percent") names the top-level field at fault.
            var field = ex.Path is ['$', '.', .. var rest] ? rest.Split('.', '[')[0] : null;
            wrongType = OpenAIResults.Error(GatewayError.BadRequest(
                (field is null ? "The key's fields have" : $"'{field}' has") + " the wrong type (money is a number, lists are arrays of strings, "
                + "expires_at is an ISO 8601 time, the other settings are strings or numbers).", field, "invalid_value"));
            return null;
        }
    }

    private static IResult? Invalid<[System.Diagnostics.CodeAnalysis.DynamicallyAccessedMembers(System.Diagnostics.CodeAnalysis.DynamicallyAccessedMemberTypes.PublicProperties)] T>(
        IValidator<T> validator, T request)
    {
        var result = validator.Validate(request);
        if (result.IsValid) return null;
        var first = result.Errors[0];
        return OpenAIResults.Error(GatewayError.BadRequest(first.ErrorMessage, Param<T>(first.PropertyName), "invalid_value"));
    }

    // The field as the body names it: its JSON name where it has its own (cache_write_1h_price_per_mtok), else its snake_case.
    private static string Param<[System.Diagnostics.CodeAnalysis.DynamicallyAccessedMembers(System.Diagnostics.CodeAnalysis.DynamicallyAccessedMemberTypes.PublicProperties)] T>(
        string propertyName) =>
        typeof(T).GetProperty(propertyName)?.GetCustomAttributes(typeof(System.Text.Json.Serialization.JsonPropertyNameAttribute), false)
            is [System.Text.Json.Serialization.JsonPropertyNameAttribute named, ..] ? named.Name : ToSnake(propertyName);

    // A name in the body that does not exist is the body's fault (400), not a missing resource at the URL (404).
    private static IResult Missing(MissingReference missing) =>
        OpenAIResults.Error(GatewayError.BadRequest(missing.Message, missing.Param, "invalid_value"));

    private static JsonHttpResult<Gateway.Core.Wire.OpenAIErrorBody> NotFound(string what, string id) =>
        (JsonHttpResult<Gateway.Core.Wire.OpenAIErrorBody>)OpenAIResults.Error(
            new GatewayError(404, $"No {what} '{id}'.", "invalid_request_error", null, "not_found"));

    private static string ToSnake(string name) => System.Text.Json.JsonNamingPolicy.SnakeCaseLower.ConvertName(name);
}

internal sealed record RouteTestRequest(JsonElement Request, Guid? KeyId = null, Dictionary<string, string>? Headers = null);

internal sealed record AdminTokenRequest(string? Name);

/// <summary>An admin token as issued: the only time its secret is shown.</summary>
internal sealed record CreatedAdminToken(Guid Id, string Name, string Prefix, DateTime CreatedAt, string Token);

/// <summary>Source-generated serializers for the admin API's own request and response shapes (snake_case, as <see cref="AdminJson"/>).</summary>
[System.Text.Json.Serialization.JsonSourceGenerationOptions(JsonSerializerDefaults.Web,
    PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.SnakeCaseLower,
    ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true)]
[System.Text.Json.Serialization.JsonSerializable(typeof(RouteTestRequest))]
[System.Text.Json.Serialization.JsonSerializable(typeof(AdminTokenRequest))]
[System.Text.Json.Serialization.JsonSerializable(typeof(CreatedAdminToken))]
internal sealed partial class AdminApiJson : System.Text.Json.Serialization.JsonSerializerContext;
