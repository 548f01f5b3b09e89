using FluentValidation;
using Gateway.Api.Auth;
using Gateway.Api.Errors;
using Gateway.Core.Admin;
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

    public static RouteGroupBuilder MapAdmin(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/admin").RequireMasterKey();

        admin.MapPost("/keys", async Task<IResult> (CreateKeyRequest request, KeyStore keys, CancellationToken ct) =>
        {
            if (Invalid(KeyRules, request) is { } bad) return bad;
            var created = await keys.CreateAsync(request, ct);
            return TypedResults.Created($"/admin/keys/{created.Id}", created);
        });
        admin.MapGet("/keys", async (KeyStore keys, CancellationToken ct) => TypedResults.Ok(await keys.ListAsync(ct)));
        admin.MapPost("/keys/{id:guid}/revoke", async Task<IResult> (Guid id, KeyStore keys, CancellationToken ct) =>
            await keys.RevokeAsync(id, ct) is { } revoked ? TypedResults.Ok(revoked) : NotFound("key", id.ToString()));

        admin.MapGet("/providers", async (CatalogStore catalog, CancellationToken ct) => TypedResults.Ok(await catalog.ListProvidersAsync(ct)));
        admin.MapPost("/providers", async Task<IResult> (ProviderRequest request, CatalogStore catalog, ProviderRequestValidator rules, CancellationToken ct) =>
        {
            if (Invalid(rules, request) is { } bad) return bad;
            return await catalog.CreateProviderAsync(request, ct) is { } created
                ? TypedResults.Created($"/admin/providers/{created.Name}", created)
                : OpenAIResults.Error(new GatewayError(409, $"A provider named '{request.Name}' exists; use PUT to change it.",
                    "invalid_request_error", "name", "conflict"));
        });
        admin.MapPut("/providers/{name}", async Task<IResult> (string name, ProviderRequest request, CatalogStore catalog, ProviderRequestValidator rules,
            CancellationToken ct) =>
        {
            request = request with { Name = name };
            if (Invalid(rules, request) is { } bad) return bad;
            return await catalog.UpdateProviderAsync(name, request, ct) is { } updated ? TypedResults.Ok(updated) : NotFound("provider", name);
        });

        admin.MapGet("/models", async (CatalogStore catalog, CancellationToken ct) => TypedResults.Ok(await catalog.ListModelsAsync(ct)));
        admin.MapPost("/models", (ModelRequest request, CatalogStore catalog, CancellationToken ct) =>
            UpsertModelAsync(request.Alias ?? "", request, catalog, ct));
        admin.MapPut("/models/{**alias}", (string alias, ModelRequest request, CatalogStore catalog, CancellationToken ct) =>
            UpsertModelAsync(alias, request with { Alias = alias }, catalog, ct));
        return admin;
    }

    private static async Task<IResult> UpsertModelAsync(string alias, ModelRequest request, CatalogStore catalog, CancellationToken ct)
    {
        if (Invalid(ModelRules, request) is { } bad) return bad;
        var (model, created) = await catalog.UpsertModelAsync(alias, request, ct);
        if (model is null) return NotFound("provider", request.Provider!);
        return created ? TypedResults.Created($"/admin/models/{model.Alias}", model) : TypedResults.Ok(model);
    }

    private static IResult? Invalid<T>(IValidator<T> validator, T request)
    {
        var result = validator.Validate(request);
        if (result.IsValid) return null;
        var first = result.Errors[0];
        return OpenAIResults.Error(GatewayError.BadRequest(first.ErrorMessage, ToSnake(first.PropertyName), "invalid_value"));
    }

    private static JsonHttpResult<Gateway.Core.Wire.OpenAIErrorBody> NotFound(string what, string id) =>
        (JsonHttpResult<Gateway.Core.Wire.OpenAIErrorBody>)OpenAIResults.Error(
            new GatewayError(404, $"No {what} '{id}'.", "invalid_request_error", null, "not_found"));

    private static string ToSnake(string name) => System.Text.Json.JsonNamingPolicy.SnakeCaseLower.ConvertName(name);
}
