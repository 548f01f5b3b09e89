extern alias admin;

using System.Net;
using admin::Gateway.Admin.Data;
using Dapper;
using Gateway.Tests.Fixtures;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Gateway.Tests.Admin;

/// <summary>
/// The sign-in form under attack: wrong passwords from one address are refused before they can lock the account, the admin
/// still signs in from elsewhere, guessing from many addresses still locks it, and unknown e-mails cost a hash as known ones
/// do. Clients are told apart by their loopback source address (127.0.0.x), as the server sees them; the defaults apply
/// (5 failures per address in 15 minutes, 20 per account). The tests of this class share one app and use distinct addresses.
/// </summary>
public sealed class SignInThrottleTests(TestEnvironment env, SignInThrottleTests.CountingApp app) : IClassFixture<SignInThrottleTests.CountingApp>
{
    /// <summary>The admin app with a password hasher that counts its verifications.</summary>
    public sealed class CountingApp : IAsyncDisposable
    {
        public CountingHasher Hasher { get; } = new();

        public AdminHost App { get; }

        public CountingApp() => App = new AdminHost(TestEnvironment.Current.Postgres.ConnectionString,
            services: s => s.AddSingleton<IPasswordHasher<AdminUser>>(Hasher));

        public ValueTask DisposeAsync() => App.DisposeAsync();
    }

    /// <summary>Identity's own hasher, counting how often a password is checked against a hash.</summary>
    public sealed class CountingHasher : PasswordHasher<AdminUser>
    {
        private int _verifications;

        public int Verifications => Volatile.Read(ref _verifications);

        public override PasswordVerificationResult VerifyHashedPassword(AdminUser user, string hashedPassword, string providedPassword)
        {
            Interlocked.Increment(ref _verifications);
            return base.VerifyHashedPassword(user, hashedPassword, providedPassword);
        }
    }

    private AdminHost App => app.App;

    private HttpClient From(string address) => LoopbackClients.From(address, App.BaseAddress);

    private static async Task<string> ErrorShownAsync(HttpResponseMessage response)
    {
        var page = await response.Content.ReadAsStringAsync();
        var start = page.IndexOf("data-testid=\"login-error\">", StringComparison.Ordinal);
        return start < 0 ? "" : WebUtility.HtmlDecode(page[(start + 26)..page.IndexOf('<', start + 26)]);
    }

    private async Task<(int Failed, bool Locked)> AccountStateAsync(string email)
    {
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        return await db.QuerySingleAsync<(int, bool)>(
            "SELECT access_failed_count, coalesce(lockout_end > now(), false) FROM admin_users WHERE email = @email", new { email });
    }

    [Fact]
    public async Task WrongPasswords_FromOneAddress_AreRefusedBeforeTheAccountLocks_AndTheAdminStillSignsInFromAnother()
    {
        var (email, password) = await App.CreateUserAsync(AdminRoles.Admin);
        using var attacker = From("127.0.0.2");

        var answers = new List<(HttpStatusCode Status, string Error)>();
        for (var i = 0; i < 8; i++)
        {
            // A new X-Forwarded-For each time: not believed unless Gateway:TrustedProxies names the sender.
            using var response = await AdminHost.PostSignInAsync(attacker, email, "wrong-password-" + i, forwardedFor: $"10.9.8.{i}");
            answers.Add((response.StatusCode, await ErrorShownAsync(response)));
        }
        // Refused even with the right password: the address may not try any more, so it cannot tell a good guess either.
        using var rightPasswordFromAttacker = await AdminHost.PostSignInAsync(attacker, email, password);
        var afterAttack = await AccountStateAsync(email);
        using var admin = From("127.0.0.1");
        using var signedIn = await AdminHost.PostSignInAsync(admin, email, password);

        Assert.All(answers[..5], a => Assert.Equal((HttpStatusCode.OK, "Wrong e-mail or password."), a));
        Assert.All(answers[5..], a => Assert.Equal(HttpStatusCode.TooManyRequests, a.Status));
        Assert.All(answers[5..], a => Assert.StartsWith("Too many failed sign-ins from your address.", a.Error, StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.TooManyRequests, rightPasswordFromAttacker.StatusCode);
        Assert.True(rightPasswordFromAttacker.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        Assert.Equal((5, false), afterAttack); // the refused attempts never reached the account
        Assert.Equal(HttpStatusCode.Redirect, signedIn.StatusCode);
        Assert.Contains(signedIn.Headers.GetValues("Set-Cookie"), c => c.StartsWith("gateway.admin=", StringComparison.Ordinal));
        Assert.Equal((0, false), await AccountStateAsync(email)); // a success resets the account's count
    }

    [Fact]
    public async Task WrongPasswords_FromManyAddresses_StillLockTheAccount_AndALockedAccountCostsAHashToo()
    {
        var (email, password) = await App.CreateUserAsync(AdminRoles.Admin);

        // Twenty guesses, five from each of four addresses: each address stays under its limit, the account does not.
        foreach (var address in new[] { "127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14" })
        {
            using var guesser = From(address);
            for (var i = 0; i < 5; i++)
            {
                using var wrong = await AdminHost.PostSignInAsync(guesser, email, "guess-" + address + "-" + i);
                Assert.Equal(HttpStatusCode.OK, wrong.StatusCode);
            }
        }
        using var owner = From("127.0.0.15");
        var hashedBefore = app.Hasher.Verifications;
        using var refused = await AdminHost.PostSignInAsync(owner, email, password);
        var hashed = app.Hasher.Verifications - hashedBefore;

        Assert.Equal(HttpStatusCode.OK, refused.StatusCode);
        Assert.Contains("locked", await ErrorShownAsync(refused), StringComparison.Ordinal);
        Assert.True((await AccountStateAsync(email)).Locked);
        Assert.Equal(1, hashed);
    }

    [Fact]
    public async Task UnknownAccount_IsCheckedAgainstAHash_AsAKnownOneIs()
    {
        var (email, _) = await App.CreateUserAsync(AdminRoles.Finance);
        using var client = From("127.0.0.21");

        var before = app.Hasher.Verifications;
        using var unknown = await AdminHost.PostSignInAsync(client, "nobody-" + Guid.NewGuid().ToString("N")[..8] + "@example.com", "some-password");
        var forUnknown = app.Hasher.Verifications - before;
        using var known = await AdminHost.PostSignInAsync(client, email, "some-password");
        var forKnown = app.Hasher.Verifications - before - forUnknown;

        Assert.Equal((1, 1), (forUnknown, forKnown));
        Assert.Equal(await ErrorShownAsync(known), await ErrorShownAsync(unknown));
        Assert.Equal("Wrong e-mail or password.", await ErrorShownAsync(unknown));
    }
}
