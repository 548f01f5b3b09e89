using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Options;

namespace Gateway.Core.Secrets;

/// <summary>
/// Provider secrets are stored as references, never in clear text: <c>env:NAME</c> (an environment
/// variable), <c>file:/path</c> (a file, e.g. a mounted Docker/Kubernetes secret) or <c>enc:…</c>
/// (encrypted with ASP.NET Core Data Protection by <see cref="Protect"/>).
/// </summary>
public sealed class SecretResolver(IDataProtectionProvider protection, IOptions<GatewayOptions> options)
{
    private const string Purpose = "Gateway.ProviderSecrets.v1";
    private readonly IDataProtector _protector = protection.CreateProtector(Purpose);

    public string Protect(string secret) => "enc:" + _protector.Protect(secret);

    public static bool IsReference(string value) =>
        value.StartsWith("env:", StringComparison.Ordinal) && value.Length > 4
        || value.StartsWith("file:", StringComparison.Ordinal) && value.Length > 5
        || value.StartsWith("enc:", StringComparison.Ordinal) && value.Length > 4;

    /// <summary>
    /// Why a reference may not be used, or null. A reference is sent to the provider as its key, so
    /// it must not name the gateway's own secrets: no <c>ConnectionStrings*</c>/<c>Gateway*</c>
    /// variables, and files only below <c>Gateway:SecretFileRoots</c>.
    /// </summary>
    public string? Forbidden(string reference)
    {
        if (reference.StartsWith("env:", StringComparison.Ordinal))
        {
            var name = reference[4..];
            if (name.StartsWith("ConnectionStrings", StringComparison.OrdinalIgnoreCase) || name.StartsWith("Gateway__", StringComparison.OrdinalIgnoreCase)
                || name.StartsWith("Gateway:", StringComparison.OrdinalIgnoreCase))
                return $"environment variable {name} holds the gateway's own configuration";
            var patterns = options.Value.SecretEnvironmentPatterns;
            return patterns.Any(pattern => Matches(name, pattern))
                ? null
                : $"environment variable {name} is not one a provider secret may come from (Gateway:SecretEnvironmentPatterns: {string.Join(", ", patterns)})";
        }
        if (reference.StartsWith("file:", StringComparison.Ordinal))
        {
            string full;
            try
            {
                full = Path.GetFullPath(reference[5..]);
            }
            catch (Exception ex) when (ex is ArgumentException or NotSupportedException or PathTooLongException)
            {
                return "the file path is not valid";
            }
            // Kubernetes mounts each pod's own service-account token below /var/run/secrets/kubernetes.io: never a provider key.
            if (full.Contains("/kubernetes.io/", StringComparison.Ordinal)) return "the file is a Kubernetes service-account credential";
            var roots = options.Value.SecretFileRoots;
            return roots.Any(root => full.StartsWith(Path.GetFullPath(root).TrimEnd('/') + "/", StringComparison.Ordinal))
                ? null
                : $"secret files must be below {string.Join(" or ", roots)} (Gateway:SecretFileRoots)";
        }
        return null;
    }

    private static bool Matches(string name, string pattern) => pattern switch
    {
        ['*', .. var suffix] => name.EndsWith(suffix, StringComparison.Ordinal) && name.Length > suffix.Length,
        [.. var prefix, '*'] => name.StartsWith(prefix, StringComparison.Ordinal) && name.Length > prefix.Length,
        _ => name == pattern,
    };

    /// <summary>
    /// Why a provider's base URL may not be used, or null: credentials in it (never echoed; a secret belongs in
    /// <c>secret</c>/<c>secret_ref</c>), or a link-local or cloud metadata address unless <c>Gateway:AllowLinkLocalUpstreams</c>.
    /// A host name is judged as written: one that resolves to such an address is not caught here.
    /// </summary>
    public string? ForbiddenBaseUrl(string? url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri)) return null; // the URL rule says what is wrong
        if (uri.UserInfo.Length > 0) return "it must not contain a user name or password; send the key as 'secret' or 'secret_ref'";
        if (options.Value.AllowLinkLocalUpstreams) return null;
        var linkLocal = uri.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6
            && System.Net.IPAddress.TryParse(uri.DnsSafeHost, out var ip)
            && (ip.IsIPv6LinkLocal || ip.Equals(System.Net.IPAddress.Parse("fd00:ec2::254"))
                || ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && ip.GetAddressBytes() is [169, 254, ..]);
        return linkLocal || uri.Host.Equals("metadata.google.internal", StringComparison.OrdinalIgnoreCase)
            ? "it is a link-local or cloud metadata address (allow with Gateway:AllowLinkLocalUpstreams)"
            : null;
    }

    /// <summary>What an admin may see of a reference: env/file names, never encrypted payloads.</summary>
    public static string? Describe(string? reference) =>
        reference is not null && reference.StartsWith("enc:", StringComparison.Ordinal) ? "enc:(encrypted)" : reference;

    /// <summary>The secret, or null with a reason that names no secret.</summary>
    public (string? Secret, string? Problem) Resolve(string? reference)
    {
        if (string.IsNullOrEmpty(reference)) return (null, null);
        if (Forbidden(reference) is { } forbidden) return (null, forbidden);
        try
        {
            if (reference.StartsWith("env:", StringComparison.Ordinal))
            {
                var value = Environment.GetEnvironmentVariable(reference[4..]);
                return string.IsNullOrEmpty(value) ? (null, $"environment variable {reference[4..]} is not set") : (value, null);
            }
            if (reference.StartsWith("file:", StringComparison.Ordinal))
                return (File.ReadAllText(reference[5..]).Trim(), null);
            if (reference.StartsWith("enc:", StringComparison.Ordinal))
                return (_protector.Unprotect(reference[4..]), null);
        }
        catch (Exception ex)
        {
            // Whatever went wrong, the provider is unusable and the reload must go on.
            return (null, $"secret reference could not be read ({ex.GetType().Name})");
        }
        return (null, "unknown secret reference scheme");
    }
}
