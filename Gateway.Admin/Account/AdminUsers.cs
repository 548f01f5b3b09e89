using System.Security.Cryptography;
using Gateway.Admin.Data;
using Microsoft.AspNetCore.Identity;

namespace Gateway.Admin.Account;

/// <summary>Creates admin app users with a generated password (shown once, never stored in clear).</summary>
public sealed class AdminUsers(UserManager<AdminUser> users)
{
    public async Task<(string? Password, string? Error)> CreateAsync(string email, string role)
    {
        if (role is not (AdminRoles.Admin or AdminRoles.Finance)) return (null, $"Role must be {AdminRoles.Admin} or {AdminRoles.Finance}.");
        var user = new AdminUser { UserName = email, Email = email, EmailConfirmed = true };
        // 18 random bytes in base64url: 24 characters, well past the 12-character minimum.
        var password = Convert.ToBase64String(RandomNumberGenerator.GetBytes(18)).Replace('+', '-').Replace('/', '_');
        var created = await users.CreateAsync(user, password);
        if (!created.Succeeded) return (null, string.Join(" ", created.Errors.Select(e => e.Description)));
        var added = await users.AddToRoleAsync(user, role);
        return added.Succeeded ? (password, null) : (null, string.Join(" ", added.Errors.Select(e => e.Description)));
    }

    public bool Any() => users.Users.Any();
}
