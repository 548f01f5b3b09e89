using System.Security.Claims;
using Gateway.Admin.Data;
using Microsoft.AspNetCore.Components.Authorization;
using Microsoft.AspNetCore.Components.Server;
using Microsoft.AspNetCore.Components.Server.Circuits;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;

namespace Gateway.Admin.Account;

/// <summary>
/// The signed-in user of one open tab (a Blazor Server circuit), kept current. Identity checks a sign-in cookie's security
/// stamp against the database only on HTTP requests, and an open tab makes none: it keeps the user it started with. So this
/// checks the tab's user when the tab opens (<see cref="RevalidateOnOpen"/>), every <see cref="AdminOptions.SecurityStampInterval"/>
/// after that, and before every change the tab makes (<see cref="ActorAsync"/>). A user removed, disabled, given another role or
/// another password since it signed in (its stamp changed) is signed out of the tab, which goes to the sign-in page.
/// </summary>
/// <remarks>
/// The check before a change closes the gap between two periodic checks: a removed Admin's tab, with the key dialog already
/// open, issues no key. The check at opening bounds the delay by one interval: a tab opened with a cookie that is stale but
/// not yet due for its own check is caught at once, not an interval later.
/// </remarks>
public sealed partial class AdminSession(ILoggerFactory loggers, IServiceScopeFactory scopes, IOptions<IdentityOptions> identity,
    IOptions<AdminOptions> options) : RevalidatingServerAuthenticationStateProvider(loggers)
{
    private readonly ILogger _logger = loggers.CreateLogger<AdminSession>();

    protected override TimeSpan RevalidationInterval => options.Value.SecurityStampInterval;

    protected override Task<bool> ValidateAuthenticationStateAsync(AuthenticationState authenticationState, CancellationToken cancellationToken) =>
        IsCurrentAsync(authenticationState.User);

    /// <summary>
    /// The signed-in user's e-mail (the audit log's actor) when it is still the user it signed in as and has
    /// <paramref name="role"/>; otherwise null: the change must not be made (a user no longer current is signed out of the tab).
    /// </summary>
    public async Task<string?> ActorAsync(string role = AdminRoles.Admin)
    {
        var user = (await GetAuthenticationStateAsync()).User;
        if (user.Identity?.IsAuthenticated != true) return null;
        if (!await IsCurrentAsync(user))
        {
            Log.SignedOut(_logger);
            SignOutTab();
            return null;
        }
        return user.IsInRole(role) ? user.Identity.Name : null;
    }

    /// <summary>Checks the tab's user now; one no longer current is signed out of the tab.</summary>
    public async Task RevalidateNowAsync()
    {
        var user = (await GetAuthenticationStateAsync()).User;
        if (user.Identity?.IsAuthenticated != true) return;
        bool current;
        try
        {
            current = await IsCurrentAsync(user);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // As the periodic check does: a user who cannot be checked is not kept.
            Log.CheckFailed(_logger, e);
            current = false;
        }
        if (current) return;
        Log.SignedOut(_logger);
        SignOutTab();
    }

    /// <summary>Whether the principal's user exists, is not disabled and has the principal's security stamp.</summary>
    private async Task<bool> IsCurrentAsync(ClaimsPrincipal principal)
    {
        // A scope of its own: the circuit's UserManager and EF context live as long as the tab and could answer from memory.
        await using var scope = scopes.CreateAsyncScope();
        var users = scope.ServiceProvider.GetRequiredService<UserManager<AdminUser>>();
        var user = await users.GetUserAsync(principal);
        return user is not null && !AdminUsers.IsDisabled(user.LockoutEnd)
            && principal.FindFirstValue(identity.Value.ClaimsIdentity.SecurityStampClaimType) == await users.GetSecurityStampAsync(user);
    }

    /// <summary>What the periodic check does to a user no longer current: the tab's user becomes anonymous (the router then sends it to sign in).</summary>
    private void SignOutTab() => SetAuthenticationState(Task.FromResult(new AuthenticationState(new ClaimsPrincipal(new ClaimsIdentity()))));

    private static partial class Log
    {
        [LoggerMessage(EventId = 2101, Level = LogLevel.Information,
            Message = "An open tab's user was removed, disabled or given another role or password since signing in: signed out of the tab")]
        public static partial void SignedOut(ILogger logger);

        [LoggerMessage(EventId = 2102, Level = LogLevel.Warning, Message = "Could not check an open tab's user; signed out of the tab")]
        public static partial void CheckFailed(ILogger logger, Exception exception);
    }
}

/// <summary>Checks a tab's user as its circuit opens (<see cref="AdminSession.RevalidateNowAsync"/>).</summary>
internal sealed class RevalidateOnOpen(AdminSession session) : CircuitHandler
{
    public override Task OnCircuitOpenedAsync(Circuit circuit, CancellationToken cancellationToken) => session.RevalidateNowAsync();
}
