using System.Collections.Frozen;
using Dapper;
using Gateway.Core.Secrets;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Gateway.Core.Catalog;

/// <summary>A provider as the hot path uses it, its secret already resolved.</summary>
public sealed record ProviderInfo(Guid Id, string Name, string Protocol, Uri BaseUrl, string? Secret, string? SecretProblem,
    ProviderSettings Settings);

/// <summary>
/// An alias served by one provider's model, with its prices in USD per million tokens: input, output, input read from the
/// provider's prompt cache, input written to it (5-minute entries, or a provider that does not say) and written to 1-hour entries.
/// </summary>
public sealed record ModelRoute(
    Guid Id,
    string Alias,
    ProviderInfo Provider,
    string UpstreamModel,
    decimal InputPricePerMTok,
    decimal OutputPricePerMTok,
    decimal CachedInputPricePerMTok,
    decimal CacheWritePricePerMTok,
    decimal CacheWrite1hPricePerMTok,
    int? ContextWindow,
    int? MaxOutputTokens,
    DateTimeOffset CreatedAt,
    IReadOnlyList<string>? Fallbacks = null,
    int? TtftTimeoutMs = null,
    int? TimeoutMs = null);

/// <summary>Enabled models and providers, in memory, swapped atomically on NOTIFY.</summary>
public sealed partial class ModelCatalog(NpgsqlDataSource db, SecretResolver secrets, ILogger<ModelCatalog> logger)
{
    private FrozenDictionary<string, ModelRoute> _models = FrozenDictionary<string, ModelRoute>.Empty;

    public IReadOnlyCollection<ModelRoute> Models => _models.Values;

    public ModelRoute? Find(string alias) => _models.GetValueOrDefault(alias);

    /// <summary>Most candidates one request may try.</summary>
    public const int MaxCandidates = 8;

    /// <summary>
    /// The candidates for a request: the model itself, then its fallbacks (or <paramref name="fallbacks"/>,
    /// a rule's) that exist and are enabled, each once.
    /// </summary>
    public IReadOnlyList<ModelRoute> Chain(ModelRoute first, IReadOnlyList<string>? fallbacks = null)
    {
        fallbacks ??= first.Fallbacks;
        if (fallbacks is not { Count: > 0 }) return [first];
        var chain = new List<ModelRoute> { first };
        foreach (var alias in fallbacks)
        {
            if (chain.Count == MaxCandidates) break;
            if (Find(alias) is { } next && chain.TrueForAll(c => c.Alias != next.Alias)) chain.Add(next);
        }
        return chain;
    }

    private const string LoadSql = """
        SELECT m.id, m.alias, m.upstream_model, m.input_price_per_mtok, m.output_price_per_mtok,
               m.cached_input_price_per_mtok, m.cache_write_price_per_mtok, m.cache_write_1h_price_per_mtok, m.context_window, m.max_output_tokens, m.created_at, m.fallbacks, m.ttft_timeout_ms, m.timeout_ms,
               p.id AS provider_id, p.name AS provider_name, p.protocol, p.base_url, p.secret_ref,
               p.settings::text AS settings_json
        FROM models m JOIN providers p ON p.id = m.provider_id
        WHERE m.enabled AND p.enabled
        """;

    public async Task ReloadAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<ModelRow>(new CommandDefinition(LoadSql, cancellationToken: ct));
        var providers = new Dictionary<Guid, ProviderInfo>();
        var models = new Dictionary<string, ModelRoute>(StringComparer.Ordinal);
        foreach (var r in rows)
        {
            if (!providers.TryGetValue(r.ProviderId, out var provider))
            {
                provider = Provider(r.ProviderId, r.ProviderName, r.Protocol, r.BaseUrl, r.SecretRef, r.SettingsJson, secrets);
                if (provider.SecretProblem is { } problem) Log.SecretUnavailable(logger, r.ProviderName, problem);
                providers[r.ProviderId] = provider;
            }
            models[r.Alias] = new ModelRoute(r.Id, r.Alias, provider, r.UpstreamModel, r.InputPricePerMTok,
                r.OutputPricePerMTok, r.CachedInputPricePerMTok, r.CacheWritePricePerMTok, r.CacheWrite1hPricePerMTok, r.ContextWindow, r.MaxOutputTokens, new DateTimeOffset(r.CreatedAt, TimeSpan.Zero),
                r.Fallbacks, r.TtftTimeoutMs, r.TimeoutMs);
        }
        Interlocked.Exchange(ref _models, models.ToFrozenDictionary(StringComparer.Ordinal));
    }

    /// <summary>A provider row as calls use it: its base URL as a directory, its secret resolved (or why it cannot be).</summary>
    internal static ProviderInfo Provider(Guid id, string name, string protocol, string baseUrl, string? secretRef, string? settingsJson,
        SecretResolver secrets)
    {
        var (secret, problem) = secrets.Resolve(secretRef);
        return new ProviderInfo(id, name, protocol, BaseUri(baseUrl), secret, problem, ProviderSettings.Parse(settingsJson));
    }

    // A base URL is a directory: "https://api.openai.com/v1" + "chat/completions" must keep "/v1".
    private static Uri BaseUri(string url)
    {
        var builder = new UriBuilder(url);
        if (!builder.Path.EndsWith('/')) builder.Path += "/";
        return builder.Uri;
    }

#pragma warning disable CA1812 // instantiated by Dapper
    private sealed class ModelRow
    {
        public Guid Id { get; init; }
        public string Alias { get; init; } = "";
        public string UpstreamModel { get; init; } = "";
        public decimal InputPricePerMTok { get; init; }
        public decimal OutputPricePerMTok { get; init; }
        public decimal CachedInputPricePerMTok { get; init; }
        public decimal CacheWritePricePerMTok { get; init; }
        public decimal CacheWrite1hPricePerMTok { get; init; }
        public int? ContextWindow { get; init; }
        public int? MaxOutputTokens { get; init; }
        public DateTime CreatedAt { get; init; }
        public string[] Fallbacks { get; init; } = [];
        public int? TtftTimeoutMs { get; init; }
        public int? TimeoutMs { get; init; }
        public Guid ProviderId { get; init; }
        public string ProviderName { get; init; } = "";
        public string Protocol { get; init; } = "";
        public string BaseUrl { get; init; } = "";
        public string? SecretRef { get; init; }
        public string? SettingsJson { get; init; }
    }
#pragma warning restore CA1812

    private static partial class Log
    {
        [LoggerMessage(EventId = 1101, Level = LogLevel.Warning, Message = "Provider {Provider}: {Problem}; calls to it will fail until fixed")]
        public static partial void SecretUnavailable(ILogger logger, string provider, string problem);
    }
}
