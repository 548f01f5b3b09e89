extern alias admin;

using System.Net;
using System.Text;
using admin::Gateway.Admin.Data;
using Gateway.Tests.Fixtures;
using Microsoft.Playwright;

namespace Gateway.Tests.Admin;

/// <summary>The admin app in a real browser (Debian's Chromium) against the real app, API and database.</summary>
public sealed class AdminAppTests(TestEnvironment env, AdminBrowser browser) : IClassFixture<AdminBrowser>
{
    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task Admin_SignsIn_IssuesAKey_AndTheKeyWorksAgainstTheApi()
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Admin);
        var page = await browser.NewPageAsync();

        await AdminBrowser.SignInAsync(page, email, password);
        await Assertions.Expect(page.GetByTestId("signed-in-as")).ToHaveTextAsync(email);
        await page.GetByRole(AriaRole.Link, new() { Name = "Keys" }).ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Issue key" }).ClickAsync();
        var name = "browser-" + Guid.NewGuid().ToString("N")[..8];
        await page.GetByLabel("Name").FillAsync(name);
        await page.GetByLabel("Daily budget (USD)").FillAsync("5");
        await page.GetByRole(AriaRole.Dialog).GetByRole(AriaRole.Button, new() { Name = "Issue key" }).ClickAsync();
        var shown = page.Locator("input[data-testid=new-key], [data-testid=new-key] input");
        await Assertions.Expect(shown).ToHaveValueAsync(new System.Text.RegularExpressions.Regex("^gw-"));
        var key = await shown.InputValueAsync();
        await AdminBrowser.ScreenshotAsync(page, "key-issued");
        await page.GetByRole(AriaRole.Button, new() { Name = "Done" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Cell, new() { Name = name, Exact = true })).ToBeVisibleAsync();
        await AdminBrowser.ScreenshotAsync(page, "keys");

        using var client = env.Gateway.Client(key);
        HttpResponseMessage answer;
        var deadline = Environment.TickCount64 + 3000; // the API instance learns of the key by NOTIFY
        do answer = await client.PostAsync("/v1/chat/completions", Json("""{"model":"mock","messages":[{"role":"user","content":"hi"}]}"""));
        while (answer.StatusCode == HttpStatusCode.Unauthorized && Environment.TickCount64 < deadline);
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
    }

    [Fact]
    public async Task WrongPassword_FiveTimes_LocksTheAccountOut()
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Admin);
        var page = await browser.NewPageAsync();

        for (var i = 0; i < 5; i++)
        {
            await page.GotoAsync("/account/login");
            await page.FillAsync("#email", email);
            await page.FillAsync("#password", "not-the-password-" + i);
            await page.ClickAsync("#sign-in");
            await Assertions.Expect(page.GetByTestId("login-error")).ToBeVisibleAsync();
        }
        await page.GotoAsync("/account/login");
        await page.FillAsync("#email", email);
        await page.FillAsync("#password", password);
        await page.ClickAsync("#sign-in");

        await Assertions.Expect(page.GetByTestId("login-error")).ToContainTextAsync("locked");
        await AdminBrowser.ScreenshotAsync(page, "locked-out");
    }

    [Fact]
    public async Task FinanceUser_CannotOpenTheKeysPage()
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Finance);
        var page = await browser.NewPageAsync();

        await AdminBrowser.SignInAsync(page, email, password);
        await Assertions.Expect(page.GetByRole(AriaRole.Link, new() { Name = "Keys" })).ToHaveCountAsync(0);
        await page.GotoAsync("/keys");

        await Assertions.Expect(page.GetByTestId("not-authorized")).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Button, new() { Name = "Issue key" })).ToHaveCountAsync(0);
    }

    [Fact]
    public async Task Admin_SetsABudgetOnAKey_TheApiDowngrades_AndTheAuditLogShowsTheChange()
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Admin);
        var name = "budget-" + Guid.NewGuid().ToString("N")[..8];
        var (key, keyId) = await env.Gateway.CreateKeyAsync(name: name);
        using var client = env.Gateway.Client(key);
        var ask = """{"model":"mock","max_tokens":30,"messages":[{"role":"user","content":"hi"}]}""";
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Json(ask))).StatusCode); // some spend today
        var page = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(page, email, password);
        await page.GotoAsync("/keys");
        await AdminBrowser.WaitInteractiveAsync(page);

        await page.GetByLabel($"Edit {name}").ClickAsync();
        var dialog = page.GetByRole(AriaRole.Dialog);
        await dialog.GetByLabel("Daily budget (USD)").FillAsync("0.00001");
        await dialog.GetByLabel("Hard cap per day (USD)").FillAsync("1");
        await dialog.GetByLabel("Downgrade model").ClickAsync();
        await page.GetByRole(AriaRole.Option, new() { Name = "mock-mini", Exact = true }).ClickAsync();
        await AdminBrowser.ScreenshotAsync(page, "key-edit");
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Dialog)).ToHaveCountAsync(0);

        // Within a second every instance has the new budget: the spend so far is over it, so the next requests go to mock-mini.
        HttpResponseMessage downgraded;
        var deadline = Environment.TickCount64 + 5000;
        do downgraded = await client.PostAsync("/v1/chat/completions", Json(ask));
        while (!downgraded.Headers.Contains("x-gateway-downgraded-from") && Environment.TickCount64 < deadline);
        Assert.Equal("mock", downgraded.Headers.GetValues("x-gateway-downgraded-from").Single());
        Assert.Contains("mock-mini-1", await downgraded.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        await page.GetByRole(AriaRole.Link, new() { Name = "Audit log" }).ClickAsync();
        await page.GetByLabel("Contains").FillAsync(keyId.ToString());
        // The filter applies after a debounce: wait for the filtered page (the key's creation and its update) before opening a row.
        await Assertions.Expect(page.GetByText("1-2 of 2")).ToBeVisibleAsync();
        var row = page.GetByRole(AriaRole.Row).Filter(new() { HasText = "key.update" });
        await Assertions.Expect(row).ToHaveCountAsync(1);
        await Assertions.Expect(row).ToContainTextAsync(email);
        await row.GetByRole(AriaRole.Button).First.ClickAsync(); // before → after
        await Assertions.Expect(page.Locator("pre.audit-json").Last).ToContainTextAsync("\"daily_budget_usd\": 0.00001");
        await AdminBrowser.ScreenshotAsync(page, "audit");
    }

    [Fact]
    public async Task SingleSignOn_KnownEmailSignsInWithItsRole_UnknownEmailIsRefused()
    {
        await using var provider = await FakeOidcProvider.StartAsync();
        await using var app = new AdminHost(env.Postgres.ConnectionString, new()
        {
            ["Admin:Oidc:Authority"] = provider.BaseUrl,
            ["Admin:Oidc:ClientId"] = FakeOidcProvider.ClientId,
            ["Admin:Oidc:ClientSecret"] = FakeOidcProvider.ClientSecret,
            ["Admin:Oidc:DisplayName"] = "Example SSO",
        });
        var (email, _) = await app.CreateUserAsync(AdminRoles.Finance);
        var page = await browser.NewPageAsync(app);

        provider.Email = email;
        await page.GotoAsync("/account/login");
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in with Example SSO" }).ClickAsync();
        await AdminBrowser.WaitInteractiveAsync(page);

        await Assertions.Expect(page.GetByTestId("signed-in-as")).ToHaveTextAsync(email);
        await Assertions.Expect(page.GetByRole(AriaRole.Link, new() { Name = "Keys" })).ToHaveCountAsync(0); // a Finance user

        var stranger = await browser.NewPageAsync(app);
        provider.Email = "nobody-" + Guid.NewGuid().ToString("N")[..8] + "@example.com";
        await stranger.GotoAsync("/account/login");
        await stranger.GetByRole(AriaRole.Button, new() { Name = "Sign in with Example SSO" }).ClickAsync();
        await Assertions.Expect(stranger.GetByTestId("login-error")).ToContainTextAsync("no account here");
    }

    [Fact]
    public async Task IssueKeyForm_WithoutAName_ShowsTheRuleUnderTheField_AndIssuesNothing()
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Admin);
        var page = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(page, email, password);
        await page.GotoAsync("/keys");
        await AdminBrowser.WaitInteractiveAsync(page);

        await page.GetByRole(AriaRole.Button, new() { Name = "Issue key" }).ClickAsync();
        var dialog = page.GetByRole(AriaRole.Dialog);
        await dialog.GetByLabel("Owner").FillAsync("someone");
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Issue key" }).ClickAsync();

        await Assertions.Expect(dialog.GetByText("'Name' must not be empty.")).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByTestId("new-key")).ToHaveCountAsync(0);
    }
}
