namespace Gateway.Admin.Account;

/// <summary>
/// A user as the Users page lists it. <see cref="LockedUntil"/>: the end of a lockout after failed sign-ins, if one runs now
/// (a disabled user has <see cref="Disabled"/> instead).
/// </summary>
public sealed record AdminUserRow(string Id, string Email, string Role, bool Disabled, DateTimeOffset? LockedUntil, DateTimeOffset? LastSignInAt);
