using System.Security.Claims;
using System.Security.Cryptography;
using Gateway.Admin.Data;
using Gateway.Core.Audit;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Admin.Account;

/// <summary>
/// The admin app's users: the Users page's list and changes, the first Admin, <c>add-user</c>, and one's own password.
/// Generated passwords are returned once and never stored in clear; every change is audited (entity <c>user</c>, by id, named
/// by e-mail; never a password).
/// </summary>
/// <remarks>
/// <para>Each change runs with a <see cref="UserManager{TUser}"/> of its own scope (a Blazor circuit's scope lives as long as the
/// tab, and its EF context would keep users it saved tracked), in one transaction holding a PostgreSQL advisory lock: changes
/// of the set of users take turns across every admin app instance. So two Admins disabling each other at once cannot leave
/// no active Admin, and two apps starting on a fresh database create one first Admin.</para>
/// <para>Disabling sets Identity's lockout end to <see cref="DateTimeOffset.MaxValue"/>: Identity already refuses a locked-out
/// user's password sign-in, and the single sign-on callback refuses locked-out users, so no sign-in path needs a new check.
/// A lockout after failed sign-ins ends after 15 minutes (or an unlock); a disabled user stays out until enabled.</para>
/// <para>Disabling, a role change and a password reset or change update the user's security stamp, which ends the user's
/// sessions (<see cref="AdminSession"/>, and Identity's cookie validation); removing the user ends them too.</para>
/// </remarks>
public sealed class AdminUsers(IServiceScopeFactory scopes, IDbContextFactory<AdminDbContext> contexts, AuditLog audit, TimeProvider time)
{
    /// <summary>The audit log's actor for users made by <c>Gateway.Admin add-user</c>.</summary>
    public const string CommandLineActor = "add-user (command line)";

    /// <summary>The audit log's actor for the first Admin, created at start-up.</summary>
    public const string StartUpActor = "start-up (first admin)";

    // Arbitrary but fixed, and not the Migrator's key: every admin app instance takes the same lock.
    private const long LockKey = 0x6761_7465_7761_7902;

    /// <summary>Whether a lockout end means "disabled" rather than "locked after failed sign-ins" (PostgreSQL keeps MaxValue as infinity).</summary>
    public static bool IsDisabled(DateTimeOffset? lockoutEnd) => lockoutEnd is { Year: >= 9999 };

    /// <summary>Users by e-mail, filtered by a part of it, paged in SQL.</summary>
    public async Task<(IReadOnlyList<AdminUserRow> Items, int Total)> SearchAsync(string? search, int offset, int limit, CancellationToken ct)
    {
        await using var context = await contexts.CreateDbContextAsync(ct);
        var users = context.Users.AsQueryable();
        if (!string.IsNullOrWhiteSpace(search))
        {
            var part = search.Trim().ToUpperInvariant(); // Identity's normalization
            users = users.Where(u => u.NormalizedEmail!.Contains(part));
        }
        var total = await users.CountAsync(ct);
        var page = await users.OrderBy(u => u.NormalizedEmail).ThenBy(u => u.Id).Skip(offset).Take(limit)
            .Select(u => new
            {
                u.Id, u.Email, u.LockoutEnd, u.LastSignInAt,
                Role = context.UserRoles.Where(r => r.UserId == u.Id).Join(context.Roles, ur => ur.RoleId, r => r.Id, (_, r) => r.Name).FirstOrDefault(),
            })
            .ToListAsync(ct);
        var now = time.GetUtcNow();
        return ([.. page.Select(u => new AdminUserRow(u.Id, u.Email ?? "", u.Role ?? "", IsDisabled(u.LockoutEnd),
            u.LockoutEnd > now && !IsDisabled(u.LockoutEnd) ? u.LockoutEnd : null, u.LastSignInAt))], total);
    }

    /// <summary>A new user with a generated password (returned once).</summary>
    public Task<(string? Password, string? Error)> CreateAsync(string actor, string email, string role, CancellationToken ct) =>
        role is not (AdminRoles.Admin or AdminRoles.Finance)
            ? Task.FromResult<(string?, string?)>((null, $"Role must be {AdminRoles.Admin} or {AdminRoles.Finance}."))
            : ExclusiveAsync(users => NewUserAsync(users, actor, email?.Trim() ?? "", role, ct), ct);

    /// <summary>
    /// Creates <paramref name="email"/> as an Admin when the app has no user yet. Both results null: there were users already.
    /// </summary>
    public Task<(string? Password, string? Error)> CreateFirstAdminAsync(string email, CancellationToken ct) =>
        ExclusiveAsync(async users => await users.Users.AnyAsync(ct)
            ? (null, null)
            : await NewUserAsync(users, StartUpActor, email, AdminRoles.Admin, ct), ct);

    /// <summary>Gives the user <paramref name="role"/> instead of its role; the last active Admin and one's own account keep theirs.</summary>
    public Task<string?> SetRoleAsync(string actor, string id, string role, CancellationToken ct) =>
        role is not (AdminRoles.Admin or AdminRoles.Finance)
            ? Task.FromResult<string?>($"Role must be {AdminRoles.Admin} or {AdminRoles.Finance}.")
            : ChangeAsync(actor, "user.role", id, async (users, user) =>
            {
                var roles = await users.GetRolesAsync(user);
                if (roles.SequenceEqual([role])) return Done;
                if (roles.Contains(AdminRoles.Admin) && await KeepsAnAdminAsync(users, user, actor, "change the role of") is { } refused) return Refused(refused);
                return await StepsAsync(
                    () => users.RemoveFromRolesAsync(user, roles),
                    () => users.AddToRoleAsync(user, role),
                    () => users.UpdateSecurityStampAsync(user));
            }, ct);

    /// <summary>Disables the user: no sign-in until enabled, and its sessions end.</summary>
    public Task<string?> DisableAsync(string actor, string id, CancellationToken ct) =>
        ChangeAsync(actor, "user.disable", id, async (users, user) =>
            IsDisabled(user.LockoutEnd) ? Done
            : await KeepsAnAdminAsync(users, user, actor, "disable") is { } refused ? Refused(refused)
            : await StepsAsync(
                () => users.SetLockoutEnabledAsync(user, true),
                () => users.SetLockoutEndDateAsync(user, DateTimeOffset.MaxValue),
                () => users.UpdateSecurityStampAsync(user)), ct);

    /// <summary>Lets a disabled user sign in again.</summary>
    public Task<string?> EnableAsync(string actor, string id, CancellationToken ct) =>
        ChangeAsync(actor, "user.enable", id, async (users, user) =>
            !IsDisabled(user.LockoutEnd) ? Done
            : await StepsAsync(() => users.SetLockoutEndDateAsync(user, null), () => users.ResetAccessFailedCountAsync(user)), ct);

    /// <summary>Ends a lockout after failed sign-ins (not a disabling: <see cref="EnableAsync"/> does that).</summary>
    public Task<string?> UnlockAsync(string actor, string id, CancellationToken ct) =>
        ChangeAsync(actor, "user.unlock", id, async (users, user) =>
            IsDisabled(user.LockoutEnd) ? Refused($"{user.Email} is disabled: enable it instead.")
            : await StepsAsync(() => users.SetLockoutEndDateAsync(user, null), () => users.ResetAccessFailedCountAsync(user)), ct);

    /// <summary>Removes the user; the last active Admin and one's own account stay.</summary>
    public Task<string?> RemoveAsync(string actor, string id, CancellationToken ct) =>
        ChangeAsync(actor, "user.delete", id, async (users, user) =>
            await KeepsAnAdminAsync(users, user, actor, "remove") is { } refused ? Refused(refused)
            : await StepsAsync(() => users.DeleteAsync(user)), ct);

    /// <summary>Gives the user a new generated password (returned once); its sessions end. One's own: <see cref="ChangeOwnPasswordAsync"/>.</summary>
    public async Task<(string? Password, string? Error)> ResetPasswordAsync(string actor, string id, CancellationToken ct)
    {
        var password = NewPassword();
        var error = await ChangeAsync(actor, "user.reset_password", id, async (users, user) =>
            IsActor(users, user, actor) ? Refused("Change your own password with \"Change my password\" (it asks for the current one).")
            : await StepsAsync(
                // A single sign-on user may have none; either way it ends with this one (one transaction).
                async () => await users.HasPasswordAsync(user) ? await users.RemovePasswordAsync(user) : IdentityResult.Success,
                () => users.AddPasswordAsync(user, password)), ct);
        return error is null ? (password, null) : (null, error);
    }

    /// <summary>
    /// The signed-in user's own password change, which needs the current one. A wrong current password counts as a failed
    /// sign-in (five lock the account for 15 minutes), so this form cannot be used to guess it.
    /// </summary>
    public Task<string?> ChangeOwnPasswordAsync(ClaimsPrincipal principal, string current, string next, CancellationToken ct)
    {
        var id = principal.FindFirstValue(ClaimTypes.NameIdentifier) ?? "";
        return ChangeAsync(principal.Identity?.Name ?? id, "user.change_password", id, async (users, user) =>
        {
            if (!await users.HasPasswordAsync(user)) return Refused("This account signs in with single sign-on: it has no password here.");
            if (await users.IsLockedOutAsync(user)) return Refused("Too many wrong passwords: try again in 15 minutes.");
            if (!await users.CheckPasswordAsync(user, current))
            {
                // Counted outside this change's transaction, which a refusal rolls back.
                await RecordFailedPasswordAsync(user.Id, ct);
                return Refused("The current password is wrong.");
            }
            return await StepsAsync(() => users.ChangePasswordAsync(user, current, next), () => users.ResetAccessFailedCountAsync(user));
        }, ct);
    }

    /// <summary>Notes a sign-in's time for the Users page (the cookie's sign-in event calls it).</summary>
    public async Task RecordSignInAsync(string userId, CancellationToken ct)
    {
        await using var context = await contexts.CreateDbContextAsync(ct);
        var now = time.GetUtcNow();
        await context.Users.Where(u => u.Id == userId).ExecuteUpdateAsync(s => s.SetProperty(u => u.LastSignInAt, now), ct);
    }

    private async Task RecordFailedPasswordAsync(string userId, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var users = scope.ServiceProvider.GetRequiredService<UserManager<AdminUser>>();
        if (await users.FindByIdAsync(userId) is { } user) await users.AccessFailedAsync(user);
    }

    /// <summary>Nothing to do (the user is so already): nothing changes, nothing is audited.</summary>
    private static readonly Step Done = new(null, Changed: false);

    private static Step Refused(string error) => new(error, Changed: false);

    /// <summary>A change's outcome inside its transaction: an error rolls it back.</summary>
    private sealed record Step(string? Error, bool Changed);

    /// <summary>Identity's calls of one change, in order, until one fails.</summary>
    private static async Task<Step> StepsAsync(params Func<Task<IdentityResult>>[] steps)
    {
        foreach (var step in steps)
        {
            var result = await step();
            if (!result.Succeeded) return Refused(string.Join(" ", result.Errors.Select(e => e.Description)));
        }
        return new(null, Changed: true);
    }

    /// <summary>
    /// Runs <paramref name="change"/> on the user <paramref name="id"/> under the lock and audits it with the user's record before
    /// and after (null after a removal). The entry is written before the commit: a change whose entry fails is rolled back, so
    /// none goes unrecorded. Returns the refusal, if any.
    /// </summary>
    private async Task<string?> ChangeAsync(string actor, string action, string id, Func<UserManager<AdminUser>, AdminUser, Task<Step>> change,
        CancellationToken ct)
    {
        var (_, error) = await ExclusiveAsync(async users =>
        {
            if (await users.FindByIdAsync(id) is not { } user) return (null, "That user no longer exists.");
            var before = await RecordOfAsync(users, user);
            var step = await change(users, user);
            if (step.Error is not null || !step.Changed) return (null, step.Error);
            var after = await users.FindByIdAsync(id) is { } still ? await RecordOfAsync(users, still) : null;
            await audit.RecordAsync(actor, action, "user", id, before, after, ct);
            return (null, null);
        }, ct);
        return error;
    }

    /// <summary>Runs <paramref name="work"/> in one transaction holding the users lock; commits unless it returns an error.</summary>
    private async Task<(string? Password, string? Error)> ExclusiveAsync(Func<UserManager<AdminUser>, Task<(string? Password, string? Error)>> work,
        CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var context = scope.ServiceProvider.GetRequiredService<AdminDbContext>(); // the one the UserManager's store saves through
        var users = scope.ServiceProvider.GetRequiredService<UserManager<AdminUser>>();
        await using var transaction = await context.Database.BeginTransactionAsync(ct);
        await context.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock({LockKey})", ct);
        var result = await work(users);
        if (result.Error is null) await transaction.CommitAsync(ct);
        return result;
    }

    private async Task<(string? Password, string? Error)> NewUserAsync(UserManager<AdminUser> users, string actor, string email, string role,
        CancellationToken ct)
    {
        var user = new AdminUser { UserName = email, Email = email, EmailConfirmed = true };
        var password = NewPassword();
        if (string.IsNullOrWhiteSpace(email)) return (null, "An e-mail address is needed.");
        if (await StepsAsync(() => users.CreateAsync(user, password), () => users.AddToRoleAsync(user, role)) is { Error: { } error }) return (null, error);
        await audit.RecordAsync(actor, "user.create", "user", user.Id, null, await RecordOfAsync(users, user), ct);
        return (password, null);
    }

    /// <summary>
    /// Null when <paramref name="user"/> may lose its Admin rights (<paramref name="doing"/>: "remove", "disable"…); else why not:
    /// it is the last active Admin, or the actor's own account (ask another Admin, who can then check it is meant).
    /// </summary>
    private static async Task<string?> KeepsAnAdminAsync(UserManager<AdminUser> users, AdminUser user, string actor, string doing)
    {
        if (await users.IsInRoleAsync(user, AdminRoles.Admin) && !IsDisabled(user.LockoutEnd)
            && !(await users.GetUsersInRoleAsync(AdminRoles.Admin)).Any(u => u.Id != user.Id && !IsDisabled(u.LockoutEnd)))
            return $"{user.Email} is the last active Admin: add or enable another Admin first, or nobody could manage the gateway.";
        return IsActor(users, user, actor) ? $"You cannot {doing} your own account: ask another Admin." : null;
    }

    private static bool IsActor(UserManager<AdminUser> users, AdminUser user, string actor) => user.NormalizedUserName == users.NormalizeName(actor);

    private static async Task<UserRecord> RecordOfAsync(UserManager<AdminUser> users, AdminUser user) => new(
        user.Email ?? "",
        string.Join(",", await users.GetRolesAsync(user)),
        IsDisabled(user.LockoutEnd) ? "disabled" : "active",
        IsDisabled(user.LockoutEnd) ? null : user.LockoutEnd);

    /// <summary>A user as the audit log records it (<see cref="Name"/> is the e-mail: the log names its targets by <c>name</c>).</summary>
    internal sealed record UserRecord(string Name, string Role, string Status, DateTimeOffset? LockedUntil);

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
