extern alias admin;

using System.Diagnostics;
using System.Security.Claims;
using System.Text.RegularExpressions;
using admin::Gateway.Admin.Account;
using admin::Gateway.Admin.Data;
using Dapper;
using Gateway.Tests.Fixtures;
using Microsoft.Playwright;
using Npgsql;

namespace Gateway.Tests.Admin;

/// <summary>
/// The Users page, one's own password, and sessions that end when their user changes: in a real browser (Debian's Chromium)
/// against the real app and database. <see cref="QuickStampHost"/> checks sessions each second, <see cref="AdminBrowser"/>'s
/// app at the default 30 seconds (there only the check before each change can stop a stale tab within a test's time).
/// </summary>
public sealed class UsersPageTests(TestEnvironment env, AdminBrowser browser, QuickStampHost quick)
    : IClassFixture<AdminBrowser>, IClassFixture<QuickStampHost>
{
    private static readonly LocatorGetByLabelOptions ExactLabel = new() { Exact = true };

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("removed")]
    [InlineData("disabled")]
    [InlineData("demoted")]
    [InlineData("password reset")]
    [InlineData("password changed")]
    public async Task OpenTab_OfAUserWhoChanged_LosesAccessWithinTheInterval_AndCannotReachTheKeysAgain(string change)
    {
        var app = quick.App;
        var (email, password) = await app.CreateUserAsync(AdminRoles.Admin);
        var id = await app.UserIdAsync(email);
        var page = await browser.NewPageAsync(app);
        await AdminBrowser.SignInAsync(page, email, password);
        await page.GotoAsync("/keys");
        await AdminBrowser.WaitInteractiveAsync(page);
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Level = 1, Name = "API keys" })).ToBeVisibleAsync();

        var users = app.Users;
        var refused = change switch
        {
            "removed" => await users.RemoveAsync(AdminHost.TestActor, id, Ct),
            "disabled" => await users.DisableAsync(AdminHost.TestActor, id, Ct),
            "demoted" => await users.SetRoleAsync(AdminHost.TestActor, id, AdminRoles.Finance, Ct),
            "password reset" => (await users.ResetPasswordAsync(AdminHost.TestActor, id, Ct)).Error,
            _ => await users.ChangeOwnPasswordAsync(Principal(id, email), password, "Another-password-" + Guid.NewGuid().ToString("N")[..8], Ct),
        };
        Assert.Null(refused);
        var changed = Stopwatch.StartNew();

        // The open tab (its circuit makes no HTTP request) is sent to sign in at its next check.
        await Eventually.TrueAsync(() => page.Url.Contains("/account/login", StringComparison.Ordinal), what: "The tab going to the sign-in page");
        // One interval, plus the page load, with room for a loaded machine; the old 30-minute default would never get here.
        Assert.True(changed.Elapsed < TimeSpan.FromSeconds(15), $"signed out after {changed.Elapsed.TotalSeconds:0.0} s");
        // And the browser's cookie no longer opens any page.
        await page.GotoAsync("/keys");
        await Assertions.Expect(page).ToHaveURLAsync(new Regex("/account/login"));
        await Assertions.Expect(page.GetByRole(AriaRole.Button, new() { Name = "Issue key" })).ToHaveCountAsync(0);
    }

    [Fact]
    public async Task RemovedAdmin_WithTheIssueKeyDialogOpen_IssuesNoKey_AndIsSentToSignIn()
    {
        // The app checks open tabs every 30 seconds here: within this test only the check before the change can stop it.
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Admin);
        var id = await browser.App.UserIdAsync(email);
        var page = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(page, email, password);
        await page.GotoAsync("/keys");
        await AdminBrowser.WaitInteractiveAsync(page);
        var dialog = await AdminBrowser.OpenDialogAsync(page, page.GetByRole(AriaRole.Button, new() { Name = "Issue key" }));
        var name = "after-removal-" + Guid.NewGuid().ToString("N")[..8];
        await dialog.GetByLabel("Name", ExactLabel).FillAsync(name);

        Assert.Null(await browser.App.Users.RemoveAsync(AdminHost.TestActor, id, Ct));
        var removed = Stopwatch.StartNew();
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Issue key" }).ClickAsync();

        await Eventually.TrueAsync(() => page.Url.Contains("/account/login", StringComparison.Ordinal), what: "The tab going to the sign-in page");
        Assert.True(removed.Elapsed < TimeSpan.FromSeconds(20), $"signed out after {removed.Elapsed.TotalSeconds:0.0} s, as late as the periodic check");
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        Assert.Equal(0, await db.ExecuteScalarAsync<int>("SELECT count(*) FROM api_keys WHERE name = @name", new { name }));
        Assert.Equal(0, await db.ExecuteScalarAsync<int>("SELECT count(*) FROM audit_log WHERE actor = @email", new { email }));
    }

    [Fact]
    public async Task Admin_AddsAUser_WhoSignsInWithTheShownPassword_ThenResetsIt_AndOnlyTheNewOneWorks()
    {
        var (admin, adminPassword) = await browser.App.CreateUserAsync(AdminRoles.Admin);
        var page = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(page, admin, adminPassword);
        await page.GetByRole(AriaRole.Link, new() { Name = "Users" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Level = 1, Name = "Users" })).ToBeVisibleAsync();
        var email = "new-" + Guid.NewGuid().ToString("N")[..8] + "@example.com";

        var dialog = await AdminBrowser.OpenDialogAsync(page, page.GetByRole(AriaRole.Button, new() { Name = "Add user" }));
        await dialog.GetByLabel("E-mail", ExactLabel).FillAsync(email);
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Add user" }).ClickAsync();
        var first = await ShownPasswordAsync(page);
        await AdminBrowser.ScreenshotAsync(page, "user-added");
        await page.GetByRole(AriaRole.Button, new() { Name = "Done" }).ClickAsync();
        var row = await RowAsync(page, email);
        await Assertions.Expect(row).ToContainTextAsync("Finance");
        await Assertions.Expect(row.GetByTestId("user-status")).ToHaveTextAsync("active");
        await Assertions.Expect(row).ToContainTextAsync("never");

        var user = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(user, email, first);
        await Assertions.Expect(user.GetByTestId("signed-in-as")).ToHaveTextAsync(email);

        var confirm = await AdminBrowser.OpenDialogAsync(page, page.GetByRole(AriaRole.Button, new() { Name = $"Reset password of {email}", Exact = true }));
        await confirm.GetByRole(AriaRole.Button, new() { Name = "Reset" }).ClickAsync();
        var second = await ShownPasswordAsync(page);
        await page.GetByRole(AriaRole.Button, new() { Name = "Done" }).ClickAsync();
        Assert.NotEqual(first, second);

        await SignInRefusedAsync(browser.App, email, first);
        var again = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(again, email, second);
        await Assertions.Expect(again.GetByTestId("signed-in-as")).ToHaveTextAsync(email);
        // The list shows the sign-ins.
        await page.ReloadAsync();
        await AdminBrowser.WaitInteractiveAsync(page);
        await Assertions.Expect(await RowAsync(page, email)).Not.ToContainTextAsync("never");
        await page.Mouse.MoveAsync(0, 0);
        await AdminBrowser.ScreenshotAsync(page, "users");

        var id = await browser.App.UserIdAsync(email);
        Assert.Equal(["user.create", "user.reset_password"], (await AuditAsync(admin, id)).Select(e => e.Action));
        await AssertNoPasswordInTheAuditLogAsync(first, second);
    }

    [Fact]
    public async Task Admin_ChangesARole_DisablesEnablesUnlocksAndRemovesAUser_EachAudited()
    {
        var (admin, adminPassword) = await browser.App.CreateUserAsync(AdminRoles.Admin);
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Finance);
        var id = await browser.App.UserIdAsync(email);
        var page = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(page, admin, adminPassword);
        await page.GotoAsync("/users");
        await AdminBrowser.WaitInteractiveAsync(page);
        var row = await RowAsync(page, email);

        var dialog = await AdminBrowser.OpenDialogAsync(page, page.GetByRole(AriaRole.Button, new() { Name = $"Change role of {email}", Exact = true }));
        await dialog.GetByLabel("Role").ClickAsync();
        await page.GetByRole(AriaRole.Option, new() { Name = "Admin", Exact = true }).ClickAsync();
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Dialog)).ToHaveCountAsync(0);
        await Assertions.Expect(row.Locator("td").Nth(1)).ToHaveTextAsync("Admin");

        await ConfirmAsync(page, $"Disable {email}", "Disable");
        await Assertions.Expect(row.GetByTestId("user-status")).ToHaveTextAsync("disabled");
        await SignInRefusedAsync(browser.App, email, password);

        await page.GetByRole(AriaRole.Button, new() { Name = $"Enable {email}", Exact = true }).ClickAsync();
        await Assertions.Expect(row.GetByTestId("user-status")).ToHaveTextAsync("active");
        var user = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(user, email, password);
        await Assertions.Expect(user.GetByTestId("signed-in-as")).ToHaveTextAsync(email);

        // Locked after failed sign-ins (as five wrong passwords leave it): the list says until when, and an unlock ends it.
        await using (var db = new NpgsqlConnection(env.Postgres.ConnectionString))
            await db.ExecuteAsync("UPDATE admin_users SET lockout_end = now() + interval '15 minutes' WHERE id = @id", new { id });
        await page.ReloadAsync();
        await AdminBrowser.WaitInteractiveAsync(page);
        row = await RowAsync(page, email);
        await Assertions.Expect(row.GetByTestId("user-status")).ToHaveTextAsync(new Regex("^locked until \\d\\d:\\d\\d$"));
        await page.GetByRole(AriaRole.Button, new() { Name = $"Unlock {email}", Exact = true }).ClickAsync();
        await Assertions.Expect(row.GetByTestId("user-status")).ToHaveTextAsync("active");

        await ConfirmAsync(page, $"Remove {email}", "Remove");
        await Assertions.Expect(page.GetByTestId("users").GetByRole(AriaRole.Cell, new() { Name = email, Exact = true })).ToHaveCountAsync(0);
        await SignInRefusedAsync(browser.App, email, password);

        var entries = await AuditAsync(admin, id);
        Assert.Equal(["user.role", "user.disable", "user.enable", "user.unlock", "user.delete"], entries.Select(e => e.Action));
        Assert.Contains("\"role\": \"Admin\"", entries[0].After, StringComparison.Ordinal);
        Assert.Contains("\"status\": \"disabled\"", entries[1].After, StringComparison.Ordinal);
        Assert.Null(entries[^1].After);
        Assert.Contains($"\"name\": \"{email}\"", entries[^1].Before, StringComparison.Ordinal);
    }

    [Fact]
    public async Task User_ChangesOwnPassword_NeedsTheCurrentOne_StaysSignedIn_ThenOnlyTheNewOneWorks()
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Finance); // any role may
        var page = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(page, email, password);
        var next = "Changed-" + Guid.NewGuid().ToString("N")[..12];

        await page.GetByRole(AriaRole.Link, new() { Name = "Change my password" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Change my password" })).ToBeVisibleAsync();
        await FillPasswordFormAsync(page, "not-the-password", next, next);
        await Assertions.Expect(page.GetByTestId("password-error")).ToHaveTextAsync("The current password is wrong.");
        await FillPasswordFormAsync(page, password, next, next + "x");
        await Assertions.Expect(page.GetByText("The two new passwords differ.")).ToBeVisibleAsync();
        await FillPasswordFormAsync(page, password, "short1A", "short1A");
        await Assertions.Expect(page.GetByTestId("password-error")).ToContainTextAsync("at least 12 characters");
        await FillPasswordFormAsync(page, password, next, next);
        await Assertions.Expect(page.GetByTestId("password-changed")).ToBeVisibleAsync();
        await AdminBrowser.ScreenshotAsync(page, "password-changed");

        // This browser stays signed in (its cookie carries the new security stamp).
        await page.GetByRole(AriaRole.Link, new() { Name = "Back to the app" }).ClickAsync();
        await AdminBrowser.WaitInteractiveAsync(page);
        await Assertions.Expect(page.GetByTestId("signed-in-as")).ToHaveTextAsync(email);
        await SignInRefusedAsync(browser.App, email, password);
        var again = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(again, email, next);
        await Assertions.Expect(again.GetByTestId("signed-in-as")).ToHaveTextAsync(email);

        var id = await browser.App.UserIdAsync(email);
        Assert.Equal(["user.change_password"], (await AuditAsync(email, id)).Select(e => e.Action));
        await AssertNoPasswordInTheAuditLogAsync(password, next);
    }

    [Fact]
    public async Task LastActiveAdmin_CannotBeDisabledDemotedOrRemoved_AndNoAdminCanRemoveThemselves()
    {
        // A database of its own: the shared one has many Admins.
        await using var app = new AdminHost(await env.Postgres.CreateDatabaseAsync()); // its start-up creates admin@localhost
        var (me, password) = await app.CreateUserAsync(AdminRoles.Admin);
        var page = await browser.NewPageAsync(app);
        await AdminBrowser.SignInAsync(page, me, password);
        await page.GotoAsync("/users");
        await AdminBrowser.WaitInteractiveAsync(page);
        await RowAsync(page, "admin@localhost");
        await ConfirmAsync(page, "Disable admin@localhost", "Disable");
        await Assertions.Expect((await RowAsync(page, "admin@localhost")).GetByTestId("user-status")).ToHaveTextAsync("disabled");

        // Now this Admin is the last active one.
        await RowAsync(page, me);
        await ConfirmAsync(page, $"Disable {me}", "Disable");
        await RefusedAsync(page, "is the last active Admin");
        var dialog = await AdminBrowser.OpenDialogAsync(page, page.GetByRole(AriaRole.Button, new() { Name = $"Change role of {me}", Exact = true }));
        await dialog.GetByLabel("Role").ClickAsync();
        await page.GetByRole(AriaRole.Option, new() { Name = "Finance", Exact = true }).ClickAsync();
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await Assertions.Expect(dialog.GetByTestId("user-error")).ToContainTextAsync("is the last active Admin");
        await AdminBrowser.ScreenshotAsync(page, "users-last-admin");
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Cancel" }).ClickAsync();
        await ConfirmAsync(page, $"Remove {me}", "Remove");
        await RefusedAsync(page, "is the last active Admin");

        // With another active Admin, still not oneself.
        var other = await RowAsync(page, "admin@localhost");
        await page.GetByRole(AriaRole.Button, new() { Name = "Enable admin@localhost", Exact = true }).ClickAsync();
        await Assertions.Expect(other.GetByTestId("user-status")).ToHaveTextAsync("active");
        var row = await RowAsync(page, me);
        await ConfirmAsync(page, $"Remove {me}", "Remove");
        await RefusedAsync(page, "You cannot remove your own account");

        await Assertions.Expect(row.Locator("td").Nth(1)).ToHaveTextAsync("Admin");
        await Assertions.Expect(row.GetByTestId("user-status")).ToHaveTextAsync("active");
    }

    [Fact]
    public async Task TwoAdmins_DisablingEachOtherAtOnce_LeaveOneActiveAdmin()
    {
        await using var app = new AdminHost(await env.Postgres.CreateDatabaseAsync());
        var users = app.Users;
        var (a, _) = await app.CreateUserAsync(AdminRoles.Admin);
        var (b, _) = await app.CreateUserAsync(AdminRoles.Admin);
        Assert.Null(await users.DisableAsync(AdminHost.TestActor, await app.UserIdAsync("admin@localhost"), Ct)); // two active Admins left
        var (idA, idB) = (await app.UserIdAsync(a), await app.UserIdAsync(b));

        // A timing race: without the lock both checks can see the other Admin still active; a few rounds make that likely.
        for (var round = 0; round < 5; round++)
        {
            var results = await Task.WhenAll(Task.Run(() => users.DisableAsync(a, idB, Ct)), Task.Run(() => users.DisableAsync(b, idA, Ct)));

            Assert.Single(results, r => r is null);
            Assert.Single(results, r => r?.Contains("is the last active Admin", StringComparison.Ordinal) == true);
            var (rows, _) = await users.SearchAsync("@example.com", 0, 100, Ct);
            Assert.Single(rows, r => r.Role == AdminRoles.Admin && !r.Disabled);
            Assert.Null(await users.EnableAsync(AdminHost.TestActor, results[0] is null ? idB : idA, Ct));
        }
    }

    [Fact]
    public async Task FinanceUser_CannotOpenTheUsersPage()
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Finance);
        var page = await browser.NewPageAsync();

        await AdminBrowser.SignInAsync(page, email, password);
        await Assertions.Expect(page.GetByRole(AriaRole.Link, new() { Name = "Users" })).ToHaveCountAsync(0);
        await page.GotoAsync("/users");

        await Assertions.Expect(page.GetByTestId("not-authorized")).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Button, new() { Name = "Add user" })).ToHaveCountAsync(0);
        await Assertions.Expect(page.GetByTestId("users")).ToHaveCountAsync(0);
    }

    [Fact]
    public async Task HostileEmail_ShowsAsText_InTheList_TheDialogs_TheNotices_AndTheAuditLog()
    {
        // Identity refuses such a user name, so it can only come from the database (an older version, a hand-made row).
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var hostile = $"<img id=z src=x>{suffix}@example.com";
        var id = Guid.NewGuid().ToString();
        await using (var db = new NpgsqlConnection(env.Postgres.ConnectionString))
        {
            await db.ExecuteAsync("""
                INSERT INTO admin_users (id, user_name, normalized_user_name, email, normalized_email, email_confirmed, security_stamp,
                    concurrency_stamp, phone_number_confirmed, two_factor_enabled, lockout_enabled, access_failed_count)
                VALUES (@id, @hostile, upper(@hostile), @hostile, upper(@hostile), true, @stamp, @stamp, false, false, true, 0);
                INSERT INTO admin_user_roles (user_id, role_id) SELECT @id, id FROM admin_roles WHERE name = 'Finance';
                """, new { id, hostile, stamp = Guid.NewGuid().ToString() });
        }
        var (admin, password) = await browser.App.CreateUserAsync(AdminRoles.Admin);
        var page = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(page, admin, password);
        await page.GotoAsync("/users");
        await AdminBrowser.WaitInteractiveAsync(page);

        var row = await RowAsync(page, suffix);
        await Assertions.Expect(row.Locator("td").First).ToHaveTextAsync(hostile);
        await ConfirmAsync(page, $"Disable {hostile}", "Disable"); // Identity refuses to save the name: the refusal quotes it
        await Assertions.Expect(page.GetByRole(AriaRole.Dialog).Filter(new() { HasText = "Not changed" })).ToContainTextAsync(hostile);
        await Assertions.Expect(page.Locator("#z")).ToHaveCountAsync(0);
        await page.GetByRole(AriaRole.Button, new() { Name = "OK" }).ClickAsync();
        await ConfirmAsync(page, $"Remove {hostile}", "Remove");
        await Assertions.Expect(page.Locator(".mud-snackbar").Filter(new() { HasText = $"Removed {hostile}." })).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#z")).ToHaveCountAsync(0);

        // Typed into the add dialog, it is refused and the refusal shows it as text.
        var dialog = await AdminBrowser.OpenDialogAsync(page, page.GetByRole(AriaRole.Button, new() { Name = "Add user" }));
        await dialog.GetByLabel("E-mail", ExactLabel).FillAsync(hostile);
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Add user" }).ClickAsync();
        await Assertions.Expect(dialog.GetByTestId("user-error")).ToContainTextAsync(hostile);
        await Assertions.Expect(page.Locator("#z")).ToHaveCountAsync(0);
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Cancel" }).ClickAsync();

        await page.GotoAsync("/audit");
        await AdminBrowser.WaitInteractiveAsync(page);
        await page.GetByLabel("Contains").FillAsync(id);
        await Assertions.Expect(page.GetByText("1-1 of 1")).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByTestId("audit").GetByTestId("audit-target")).ToHaveTextAsync(hostile);
        await Assertions.Expect(page.Locator("#z")).ToHaveCountAsync(0);
        await Assertions.Expect(page.GetByTestId("audit").Locator("img")).ToHaveCountAsync(0);
    }

    private static ClaimsPrincipal Principal(string id, string email) =>
        new(new ClaimsIdentity([new Claim(ClaimTypes.NameIdentifier, id), new Claim(ClaimTypes.Name, email)], "test"));

    /// <summary>
    /// The list's row of the user, searched for (the list may have more users than a page); once the list shows only it, so
    /// that a click does not land while the search re-renders the list (Blazor would drop it).
    /// </summary>
    private static async Task<ILocator> RowAsync(IPage page, string email)
    {
        await page.GetByLabel("Search").FillAsync(email);
        var list = page.GetByTestId("users");
        await Assertions.Expect(list.GetByText("1-1 of 1")).ToBeVisibleAsync();
        var row = list.Locator("tbody tr").Filter(new() { HasText = email });
        await Assertions.Expect(row).ToHaveCountAsync(1);
        return row;
    }

    /// <summary>Clicks a row's action button and confirms its question.</summary>
    private static async Task ConfirmAsync(IPage page, string button, string yes)
    {
        var question = await AdminBrowser.OpenDialogAsync(page, page.GetByRole(AriaRole.Button, new() { Name = button, Exact = true }));
        await question.GetByRole(AriaRole.Button, new() { Name = yes, Exact = true }).ClickAsync();
    }

    /// <summary>The refusal's message box says <paramref name="why"/>; it is closed.</summary>
    private static async Task RefusedAsync(IPage page, string why)
    {
        var box = page.GetByRole(AriaRole.Dialog).Filter(new() { HasText = "Not changed" });
        await Assertions.Expect(box).ToContainTextAsync(why);
        await box.GetByRole(AriaRole.Button, new() { Name = "OK" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Dialog)).ToHaveCountAsync(0);
    }

    private static async Task<string> ShownPasswordAsync(IPage page)
    {
        var shown = page.Locator("input[data-testid=new-password], [data-testid=new-password] input");
        await Assertions.Expect(shown).ToHaveValueAsync(new Regex("^[A-Za-z0-9_-]{24}$"));
        return await shown.InputValueAsync();
    }

    private static async Task FillPasswordFormAsync(IPage page, string current, string next, string confirm)
    {
        // The page may still be replaced once after its heading shows (a navigation into a server-rendered page finishing under
        // load), which empties what was typed: fill until all three fields hold their values, then submit.
        await page.WaitForLoadStateAsync(LoadState.NetworkIdle);
        for (var attempt = 0; attempt < 5; attempt++)
        {
            await page.FillAsync("#current", current);
            await page.FillAsync("#new", next);
            await page.FillAsync("#confirm", confirm);
            if (await page.InputValueAsync("#current") == current && await page.InputValueAsync("#new") == next
                && await page.InputValueAsync("#confirm") == confirm)
                break;
        }
        await page.ClickAsync("#change-password");
    }

    /// <summary>The sign-in form refuses the e-mail and password (a fresh browser context).</summary>
    private async Task SignInRefusedAsync(AdminHost app, string email, string password)
    {
        var page = await browser.NewPageAsync(app);
        await page.GotoAsync("/account/login");
        await page.FillAsync("#email", email);
        await page.FillAsync("#password", password);
        await page.ClickAsync("#sign-in");
        await Assertions.Expect(page.GetByTestId("login-error")).ToBeVisibleAsync();
    }

    private sealed record AuditRow(string Action, string? Before, string? After);

    private async Task<List<AuditRow>> AuditAsync(string actor, string userId)
    {
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        return (await db.QueryAsync<AuditRow>("""
            SELECT action, before::text AS before, after::text AS after FROM audit_log
            WHERE actor = @actor AND entity = 'user' AND entity_id = @userId ORDER BY id
            """, new { actor, userId })).AsList();
    }

    private async Task AssertNoPasswordInTheAuditLogAsync(params string[] passwords)
    {
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        foreach (var password in passwords)
        {
            Assert.Equal(0, await db.ExecuteScalarAsync<int>(
                "SELECT count(*) FROM audit_log WHERE strpos(coalesce(before::text, '') || coalesce(after::text, '') || entity_id || actor, @password) > 0",
                new { password }));
        }
    }
}
