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

    public async Task ReloadAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        // The rows the admin store shows: each table's columns are listed once (ProviderView, ModelView). Providers, then models,
        // in two statements (Dapper.AOT, which runs every call here, reads no multiple result sets).
        var rows = (await connection.QueryAsync<ProviderView>($"SELECT {ProviderView.Columns} FROM providers WHERE enabled", ct))
            .ToDictionary(p => p.Name, StringComparer.Ordinal);
        var providers = new Dictionary<string, ProviderInfo>(StringComparer.Ordinal);
        var models = new Dictionary<string, ModelRoute>(StringComparer.Ordinal);
        foreach (var m in await connection.QueryAsync<ModelView>($"{ModelView.Select} WHERE m.enabled AND p.enabled", ct))
        {
            // A provider enabled or disabled between the two statements: its models wait for the reload its NOTIFY brings.
            if (!rows.TryGetValue(m.Provider, out var p)) continue;
            if (!providers.TryGetValue(p.Name, out var provider))
            {
                provider = Provider(p, secrets);
                if (provider.SecretProblem is { } problem) Log.SecretUnavailable(logger, p.Name, problem);
                providers[p.Name] = provider;
            }
            models[m.Alias] = new ModelRoute(m.Id, m.Alias, provider, m.UpstreamModel, m.InputPricePerMTok, m.OutputPricePerMTok,
                m.CachedInputPricePerMTok, m.CacheWritePricePerMTok, m.CacheWrite1hPricePerMTok, m.ContextWindow, m.MaxOutputTokens,
                new DateTimeOffset(m.CreatedAt, TimeSpan.Zero), m.Fallbacks, m.TtftTimeoutMs, m.TimeoutMs);
        }
        Interlocked.Exchange(ref _models, models.ToFrozenDictionary(StringComparer.Ordinal));
    }

    /// <summary>A provider row as calls use it: its base URL as a directory, its secret resolved (or why it cannot be).</summary>
    internal static ProviderInfo Provider(ProviderView row, SecretResolver secrets)
    {
        var (secret, problem) = secrets.Resolve(row.SecretRef);
        return new ProviderInfo(row.Id, row.Name, row.Protocol, BaseUri(row.BaseUrl), secret, problem, row.Settings);
    }

    // A base URL is a directory: "https://api.openai.com/v1" + "chat/completions" must keep "/v1".
    private static Uri BaseUri(string url)
    {
        var builder = new UriBuilder(url);
        if (!builder.Path.EndsWith('/')) builder.Path += "/";
        return builder.Uri;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1101, Level = LogLevel.Warning, Message = "Provider {Provider}: {Problem}; calls to it will fail until fixed")]
        public static partial void SecretUnavailable(ILogger logger, string provider, string problem);
    }
}
