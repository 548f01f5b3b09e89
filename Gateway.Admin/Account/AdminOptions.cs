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
}
