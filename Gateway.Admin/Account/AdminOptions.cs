using System.ComponentModel.DataAnnotations;

namespace Gateway.Admin.Account;

/// <summary>Settings of the admin app (section <c>Admin</c>).</summary>
public sealed class AdminOptions
{
    public const string SectionName = "Admin";

    /// <summary>When no user exists at start-up, an Admin with this e-mail is created and its password printed once.</summary>
    [Required, EmailAddress]
    public string FirstAdminEmail { get; set; } = "admin@localhost";

    /// <summary>Sign-in cookies only over HTTPS, plus HSTS. Off for plain-HTTP loopback use (run.sh); turn it on behind TLS.</summary>
    public bool RequireHttps { get; set; }

    /// <summary>
    /// Failed sign-ins one client address may make within <see cref="SignInFailureWindowMinutes"/>; then the form refuses that
    /// address (429) without checking a password. Below <see cref="SignInFailuresPerAccount"/>, so one address cannot lock an
    /// account out before it is refused.
    /// </summary>
    [Range(1, 1000)]
    public int SignInFailuresPerAddress { get; set; } = 5;

    /// <summary>The sliding window <see cref="SignInFailuresPerAddress"/> counts in.</summary>
    [Range(1, 1440)]
    public int SignInFailureWindowMinutes { get; set; } = 15;

    /// <summary>Failed sign-ins in a row (from any address) that lock an account for 15 minutes (Identity's lock-out).</summary>
    [Range(1, 1000)]
    public int SignInFailuresPerAccount { get; set; } = 20;

    /// <summary>
    /// How often a signed-in session is checked against its user (1–60 seconds): a sign-in cookie when this long has passed
    /// since it was issued or last checked, an open tab when it opens and then this often. A user removed, disabled, given
    /// another role or another password since signing in (Identity's security stamp changed) is signed out at that check.
    /// </summary>
    [Range(1, 60)]
    public int SecurityStampIntervalSeconds { get; set; } = 30;

    public TimeSpan SecurityStampInterval => TimeSpan.FromSeconds(SecurityStampIntervalSeconds);

    /// <summary>Optional OpenID Connect sign-in (section <c>Admin:Oidc</c>); off unless <see cref="OidcOptions.Authority"/> is set.</summary>
    public OidcOptions Oidc { get; set; } = new();
}

/// <summary>
/// Single sign-on with an OpenID Connect provider (authorization code flow with PKCE). The provider proves who the user
/// is (its <c>email</c> claim); the app's own user of that e-mail decides the role. Unknown e-mails are refused unless
/// <see cref="NewUserRole"/> is set.
/// </summary>
public sealed class OidcOptions
{
    /// <summary>The provider's issuer URL (its <c>/.well-known/openid-configuration</c> is read from there).</summary>
    public string? Authority { get; set; }

    public string? ClientId { get; set; }

    public string? ClientSecret { get; set; }

    /// <summary>The sign-in button's text.</summary>
    public string DisplayName { get; set; } = "single sign-on";

    /// <summary>Role given to a first-time user the app does not know (<c>Admin</c> or <c>Finance</c>); empty refuses them.</summary>
    public string? NewUserRole { get; set; }

    public bool Enabled => !string.IsNullOrWhiteSpace(Authority);
}
