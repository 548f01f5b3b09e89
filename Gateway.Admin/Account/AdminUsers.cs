using System.Security.Cryptography;
using Gateway.Admin.Data;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Admin.Account;

/// <summary>Creates admin app users with a generated password (shown once, never stored in clear).</summary>
public sealed class AdminUsers(UserManager<AdminUser> users)
{
    public async Task<(string? Password, string? Error)> CreateAsync(string email, string role)
    {
        if (role is not (AdminRoles.Admin or AdminRoles.Finance)) return (null, $"Role must be {AdminRoles.Admin} or {AdminRoles.Finance}.");
        var user = new AdminUser { UserName = email, Email = email, EmailConfirmed = true };
        var password = NewPassword();
        var created = await users.CreateAsync(user, password);
        if (!created.Succeeded) return (null, string.Join(" ", created.Errors.Select(e => e.Description)));
        var added = await users.AddToRoleAsync(user, role);
        return added.Succeeded ? (password, null) : (null, string.Join(" ", added.Errors.Select(e => e.Description)));
    }

    public Task<bool> AnyAsync(CancellationToken ct) => users.Users.AnyAsync(ct);

    /// <summary>
    /// 18 random bytes in base64url: 24 characters, well past the 12-character minimum. Identity also wants a digit, a
    /// lower-case and an upper-case letter; about one draw in 60 has no digit, so draw again until all three are there.
    /// </summary>
    private static string NewPassword()
    {
        while (true)
        {
            var password = Convert.ToBase64String(RandomNumberGenerator.GetBytes(18)).Replace('+', '-').Replace('/', '_');
            if (password.Any(char.IsAsciiDigit) && password.Any(char.IsAsciiLetterLower) && password.Any(char.IsAsciiLetterUpper)) return password;
        }
    }
}
