using Dapper;
using Gateway.Core.Audit;
using Gateway.Core.Secrets;
using Npgsql;

namespace Gateway.Core.Catalog;

/// <summary>
/// Providers and models for the admin API, the admin app and the seed file. Secrets leave only as references. Changes an
/// admin makes are recorded in the audit log under the actor the caller names; the seed file's are not.
/// </summary>
public sealed class CatalogStore(NpgsqlDataSource db, SecretResolver secrets, AuditLog audit, TimeProvider time)
{
    public async Task<IReadOnlyList<ProviderView>> ListProvidersAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<ProviderView>($"SELECT {ProviderView.Columns} FROM providers ORDER BY name", ct);
        return rows.Select(Masked).ToList();
    }

    /// <summary>Creates a provider; null when the name is taken.</summary>
    public async Task<ProviderView?> CreateProviderAsync(ProviderRequest request, string actor, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        if (await CreateProviderAsync(connection, request, ct) is not { } created) return null;
        await audit.RecordAsync(connection, null, actor, AuditActions.ProviderCreate, "provider", created.Name, null, created, ct);
        return created;
    }

    private async Task<ProviderView?> CreateProviderAsync(NpgsqlConnection connection, ProviderRequest request, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var view = await connection.QuerySingleOrDefaultAsync<ProviderView>($"""
            INSERT INTO providers (id, name, protocol, base_url, secret_ref, enabled, settings, created_at, updated_at)
            VALUES (@Id, @Name, @Protocol, @BaseUrl, @SecretRef, @Enabled, @Settings::jsonb, @Now, @Now)
            ON CONFLICT (name) DO NOTHING
            RETURNING {ProviderView.Columns}
            """, new
        {
            Id = Guid.CreateVersion7(now),
            request.Name,
            request.Protocol,
            request.BaseUrl,
            SecretRef = SecretRefOf(request),
            Enabled = request.Enabled ?? true,
            Settings = (request.Settings ?? ProviderSettings.Default).ToJson(),
            Now = now.UtcDateTime,
            ct,
        });
        return view is null ? null : Masked(view);
    }

    /// <summary>Updates a provider by name; a secret not sent is kept. Null when it does not exist.</summary>
    public async Task<ProviderView?> UpdateProviderAsync(string name, ProviderRequest request, string actor, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var before = await ProviderRowAsync(connection, name, ct);
        if (await UpdateProviderAsync(connection, name, request, ct) is not { } updated) return null;
        await audit.RecordAsync(connection, null, actor, AuditActions.ProviderUpdate, "provider", name, before is null ? null : Masked(before),
            updated, ct);
        return updated;
    }

    private async Task<ProviderView?> UpdateProviderAsync(NpgsqlConnection connection, string name, ProviderRequest request, CancellationToken ct)
    {
        var view = await connection.QuerySingleOrDefaultAsync<ProviderView>($"""
            UPDATE providers SET protocol = @Protocol, base_url = @BaseUrl,
                secret_ref = CASE WHEN @SecretSent THEN @SecretRef ELSE secret_ref END,
                enabled = coalesce(@Enabled, enabled), settings = coalesce(@Settings::jsonb, settings), updated_at = @Now
            WHERE name = @name
            RETURNING {ProviderView.Columns}
            """, new
        {
            name,
            request.Protocol,
            request.BaseUrl,
            SecretSent = request.SecretRef is not null || request.Secret is not null,
            SecretRef = SecretRefOf(request),
            request.Enabled,
            Settings = request.Settings?.ToJson(),
            Now = time.GetUtcNow().UtcDateTime,
            ct,
        });
        return view is null ? null : Masked(view);
    }

    /// <summary>A provider, enabled or not, as calls to it would be made (its secret resolved); null when there is none of that name.</summary>
    internal async Task<ProviderInfo?> ResolveProviderAsync(string name, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var row = await ProviderRowAsync(connection, name, ct);
        return row is null ? null : ModelCatalog.Provider(row, secrets);
    }

    /// <summary>A provider's row, its secret reference unmasked.</summary>
    private static Task<ProviderView?> ProviderRowAsync(NpgsqlConnection connection, string name, CancellationToken ct) =>
        connection.QuerySingleOrDefaultAsync<ProviderView>($"SELECT {ProviderView.Columns} FROM providers WHERE name = @name", new { name, ct });

    private string? SecretRefOf(ProviderRequest request) =>
        request.Secret is { Length: > 0 } secret ? secrets.Protect(secret) : request.SecretRef;

    private static ProviderView Masked(ProviderView view) => view with { SecretRef = SecretResolver.Describe(view.SecretRef) };

    public async Task<IReadOnlyList<ModelView>> ListModelsAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<ModelView>($"{ModelView.Select} ORDER BY m.alias", ct);
        return rows.AsList();
    }

    /// <summary>Creates or updates a model by alias. Null when its provider does not exist.</summary>
    public async Task<(ModelView? Model, bool Created)> UpsertModelAsync(string alias, ModelRequest request, string actor, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var before = await ModelRowAsync(connection, alias, ct);
        var (model, created) = await UpsertModelAsync(connection, alias, request, ct);
        if (model is null) return (null, false);
        await audit.RecordAsync(connection, null, actor, created ? AuditActions.ModelCreate : AuditActions.ModelUpdate, "model", alias, before, model,
            ct);
        return (model, created);
    }

    private async Task<(ModelView? Model, bool Created)> UpsertModelAsync(NpgsqlConnection connection, string alias, ModelRequest request,
        CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var created = await connection.QuerySingleOrDefaultAsync<bool?>("""
            INSERT INTO models AS m (id, alias, provider_id, upstream_model, input_price_per_mtok, output_price_per_mtok,
                                     cached_input_price_per_mtok, cache_write_price_per_mtok, cache_write_1h_price_per_mtok,
                                     context_window, max_output_tokens, fallbacks, ttft_timeout_ms, timeout_ms, enabled, created_at, updated_at)
            SELECT @Id, @alias, p.id, @UpstreamModel, coalesce(@InputPricePerMTok, 0), coalesce(@OutputPricePerMTok, 0),
                   coalesce(@CachedInputPricePerMTok, @InputPricePerMTok, 0), @CacheWritePrice, @CacheWrite1hPrice,
                   @ContextWindow, @MaxOutputTokens, @Fallbacks, @TtftTimeoutMs, @TimeoutMs,
                   coalesce(@Enabled, true), @Now, @Now
            FROM providers p WHERE p.name = @Provider
            ON CONFLICT (alias) DO UPDATE SET
                provider_id = excluded.provider_id, upstream_model = excluded.upstream_model,
                input_price_per_mtok = excluded.input_price_per_mtok, output_price_per_mtok = excluded.output_price_per_mtok,
                cached_input_price_per_mtok = excluded.cached_input_price_per_mtok, cache_write_price_per_mtok = excluded.cache_write_price_per_mtok,
                cache_write_1h_price_per_mtok = excluded.cache_write_1h_price_per_mtok, context_window = excluded.context_window,
                max_output_tokens = excluded.max_output_tokens, fallbacks = excluded.fallbacks, ttft_timeout_ms = excluded.ttft_timeout_ms, timeout_ms = excluded.timeout_ms,
                enabled = excluded.enabled, updated_at = excluded.updated_at
            RETURNING (xmax = 0)
            """, new
        {
            Id = Guid.CreateVersion7(now),
            alias,
            request.Provider,
            request.UpstreamModel,
            request.InputPricePerMTok,
            request.OutputPricePerMTok,
            request.CachedInputPricePerMTok,
            // Unset: what the provider is likely to bill, never less (Metering.Pricing), so spend is not under-counted.
            CacheWritePrice = request.CacheWritePricePerMTok ?? Metering.Pricing.DefaultCacheWritePrice(request.InputPricePerMTok ?? 0),
            CacheWrite1hPrice = request.CacheWrite1hPricePerMTok ?? Metering.Pricing.DefaultCacheWrite1hPrice(request.InputPricePerMTok ?? 0),
            request.ContextWindow,
            request.MaxOutputTokens,
            Fallbacks = (request.Fallbacks ?? []).ToArray(),
            request.TtftTimeoutMs,
            request.TimeoutMs,
            request.Enabled,
            Now = now.UtcDateTime,
            ct,
        });
        if (created is null) return (null, false);
        return (await ModelRowAsync(connection, alias, ct), created.Value);
    }

    private static Task<ModelView?> ModelRowAsync(NpgsqlConnection connection, string alias, CancellationToken ct) =>
        connection.QuerySingleOrDefaultAsync<ModelView>($"{ModelView.Select} WHERE m.alias = @alias", new { alias, ct });

    /// <summary>Applies the seed file: providers by name, models by alias (creating or updating). Not audited: it is configuration.</summary>
    public async Task ApplySeedAsync(IEnumerable<ProviderRequest> providers, IEnumerable<ModelRequest> models, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        foreach (var provider in providers)
        {
            if (await UpdateProviderAsync(connection, provider.Name!, provider, ct) is null)
                await CreateProviderAsync(connection, provider, ct);
        }
        foreach (var model in models)
        {
            var (view, _) = await UpsertModelAsync(connection, model.Alias!, model, ct);
            if (view is null)
                throw new InvalidOperationException($"Seed file: model '{model.Alias}' names unknown provider '{model.Provider}'.");
        }
    }
}
