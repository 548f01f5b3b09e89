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
            return name.StartsWith("ConnectionStrings", StringComparison.OrdinalIgnoreCase) || name.StartsWith("Gateway", StringComparison.OrdinalIgnoreCase)
                ? $"environment variable {name} holds the gateway's own configuration"
                : null;
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
            var roots = options.Value.SecretFileRoots;
            return roots.Any(root => full.StartsWith(Path.GetFullPath(root).TrimEnd('/') + "/", StringComparison.Ordinal))
                ? null
                : $"secret files must be below {string.Join(" or ", roots)} (Gateway:SecretFileRoots)";
        }
        return null;
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
