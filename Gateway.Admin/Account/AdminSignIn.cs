using System.Net;
using Gateway.Admin.Data;
using Gateway.Core.Limits;
using Microsoft.AspNetCore.Identity;

namespace Gateway.Admin.Account;

/// <summary>What a password sign-in came to.</summary>
public enum SignInOutcome
{
    SignedIn,
    Failed,
    LockedOut,

    /// <summary>The client's address failed too often: refused before the password was looked at.</summary>
    Throttled,
}

/// <summary>
/// The sign-in form's password check. An address that failed <see cref="AdminOptions.SignInFailuresPerAddress"/> times is
/// refused before any account is looked at (<see cref="FailedAuthThrottle"/>), so an attacker's address is stopped before
/// it can lock an account out (Identity's lock-out, <see cref="AdminOptions.SignInFailuresPerAccount"/>). Unknown and locked
/// accounts get the same work as a wrong password (one hash verification, against a dummy hash), so the time an answer
/// takes does not tell which e-mails have accounts.
/// </summary>
public sealed class AdminSignIn(SignInManager<AdminUser> signIn, UserManager<AdminUser> users, IPasswordHasher<AdminUser> hasher,
    FailedAuthThrottle throttle)
{
    private static readonly AdminUser Nobody = new();
    private static string? _dummyHash;

    public async Task<(SignInOutcome Outcome, TimeSpan RetryAfter)> PasswordSignInAsync(string email, string password, IPAddress? client)
    {
        if (throttle.IsRefused(client, out var retryAfter)) return (SignInOutcome.Throttled, retryAfter);
        var user = await users.FindByNameAsync(email);
        SignInResult result;
        if (user is null || await users.IsLockedOutAsync(user))
        {
            // Identity answers these without hashing; hash anyway, with the same hasher and settings as a real check.
            _dummyHash ??= hasher.HashPassword(Nobody, Guid.NewGuid().ToString());
            hasher.VerifyHashedPassword(Nobody, _dummyHash, password);
            result = user is null ? SignInResult.Failed : SignInResult.LockedOut;
        }
        else
        {
            // Counts towards the account's lock-out; a success resets that count.
            result = await signIn.PasswordSignInAsync(user, password, isPersistent: false, lockoutOnFailure: true);
        }
        if (result.Succeeded) return (SignInOutcome.SignedIn, TimeSpan.Zero);
        if (!throttle.RecordFailure(client, out retryAfter)) return (SignInOutcome.Throttled, retryAfter);
        return (result.IsLockedOut ? SignInOutcome.LockedOut : SignInOutcome.Failed, TimeSpan.Zero);
    }
}
