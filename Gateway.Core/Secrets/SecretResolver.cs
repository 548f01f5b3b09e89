using Microsoft.AspNetCore.DataProtection;

namespace Gateway.Core.Secrets;

/// <summary>
/// Provider secrets are stored as references, never in clear text: <c>env:NAME</c> (an environment
/// variable), <c>file:/path</c> (a file, e.g. a mounted Docker/Kubernetes secret) or <c>enc:…</c>
/// (encrypted with ASP.NET Core Data Protection by <see cref="Protect"/>).
/// </summary>
public sealed class SecretResolver(IDataProtectionProvider protection)
{
    private const string Purpose = "Gateway.ProviderSecrets.v1";
    private readonly IDataProtector _protector = protection.CreateProtector(Purpose);

    public string Protect(string secret) => "enc:" + _protector.Protect(secret);

    public static bool IsReference(string value) =>
        value.StartsWith("env:", StringComparison.Ordinal) && value.Length > 4
        || value.StartsWith("file:", StringComparison.Ordinal) && value.Length > 5
        || value.StartsWith("enc:", StringComparison.Ordinal) && value.Length > 4;

    /// <summary>What an admin may see of a reference: env/file names, never encrypted payloads.</summary>
    public static string? Describe(string? reference) =>
        reference is not null && reference.StartsWith("enc:", StringComparison.Ordinal) ? "enc:(encrypted)" : reference;

    /// <summary>The secret, or null with a reason that names no secret.</summary>
    public (string? Secret, string? Problem) Resolve(string? reference)
    {
        if (string.IsNullOrEmpty(reference)) return (null, null);
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
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            return (null, $"secret reference could not be read ({ex.GetType().Name})");
        }
        return (null, "unknown secret reference scheme");
    }
}
