using System.Collections.Frozen;
using System.Globalization;
using Gateway.Core.Providers;

namespace Gateway.Core.Catalog;

/// <summary>
/// "Test connection": one cheap real call, the protocol's list-models endpoint, with the base URL, headers and
/// resolved secret that chat calls use, within <see cref="Timeout"/>. Works for disabled providers and for ones
/// without models, so a provider can be checked before it takes traffic.
/// </summary>
public sealed class ConnectionTester(CatalogStore catalog, IEnumerable<IChatProvider> providers, TimeProvider time)
{
    /// <summary>Long enough for a slow TLS handshake far away, short enough for someone waiting at a button.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly FrozenDictionary<string, IChatProvider> _providers = providers.ToFrozenDictionary(p => p.Protocol, StringComparer.Ordinal);

    public async Task<ConnectionCheck> TestAsync(string name, CancellationToken ct)
    {
        var provider = await catalog.ResolveProviderAsync(name, ct);
        if (provider is null) return Failed($"There is no provider '{name}'.");
        // The problem names the reference (env:NAME, file:/path), never a value.
        if (provider.SecretProblem is { } problem) return Failed($"Its secret is not available: {problem}.");
        if (!_providers.TryGetValue(provider.Protocol, out var adapter)) return Failed($"The gateway has no '{provider.Protocol}' adapter.");

        var started = time.GetTimestamp();
        var listed = await adapter.ListModelsAsync(provider, Timeout, ct);
        var elapsed = time.GetElapsedTime(started);
        var ms = elapsed.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture);
        if (listed.Failure is { } failure)
        {
            var detail = failure.Kind == UpstreamFailureKind.Timeout ? $"no answer within {Timeout.TotalSeconds:0} s" : failure.Detail;
            var message = failure.UpstreamStatus is { } status ? $"HTTP {status}: {detail}" : $"Failed: {detail}";
            return new ConnectionCheck(false, failure.UpstreamStatus, Redact(message, provider.Secret), [], elapsed);
        }
        var models = listed.Value!.Models;
        return new ConnectionCheck(true, null, provider.Protocol == "mock" ? "OK: the mock provider answers offline."
            : models.Count == 0 ? $"OK in {ms} ms (no models listed)."
            : $"OK in {ms} ms: {string.Join(", ", models.Take(3))}{(models.Count > 3 ? ", …" : "")}", models, elapsed);

        ConnectionCheck Failed(string message) => new(false, null, message, [], TimeSpan.Zero);
    }

    /// <summary>
    /// A provider's message may echo the key it was sent (OpenAI: "Incorrect API key provided: sk-abc***wxyz"): the secret
    /// itself, and any masked form of it (a word with '*'), never reach the page.
    /// </summary>
    internal static string Redact(string message, string? secret)
    {
        if (!string.IsNullOrEmpty(secret)) message = message.Replace(secret, "***", StringComparison.Ordinal);
        return string.Join(' ', message.Split(' ').Select(word => word.Contains('*', StringComparison.Ordinal) ? "***" : word));
    }
}
