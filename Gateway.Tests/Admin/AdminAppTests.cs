extern alias admin;

using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using admin::Gateway.Admin.Data;
using Dapper;
using Gateway.Tests.Fixtures;
using Microsoft.Playwright;
using Npgsql;

namespace Gateway.Tests.Admin;

/// <summary>The admin app in a real browser (Debian's Chromium) against the real app, API and database.</summary>
public sealed class AdminAppTests(TestEnvironment env, AdminBrowser browser) : IClassFixture<AdminBrowser>
{
    [Fact]
    public async Task Admin_SignsIn_IssuesAKey_AndTheKeyWorksAgainstTheApi()
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Admin);
        var page = await browser.NewPageAsync();

        await AdminBrowser.SignInAsync(page, email, password);
        await Assertions.Expect(page.GetByTestId("signed-in-as")).ToHaveTextAsync(email);
        await page.GetByRole(AriaRole.Link, new() { Name = "Keys" }).ClickAsync();
        // After a navigation the focus is on the page's title, for screen readers, without a focus box around it.
        var title = page.GetByRole(AriaRole.Heading, new() { Level = 1, Name = "API keys" });
        await Assertions.Expect(title).ToBeFocusedAsync();
        Assert.Equal("none", await title.EvaluateAsync<string>("e => getComputedStyle(e).outlineStyle"));
        await AdminBrowser.OpenDialogAsync(page, page.GetByRole(AriaRole.Button, new() { Name = "Issue key" })); // right after navigation
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
        await Assertions.Expect(page.GetByTestId("keys").GetByRole(AriaRole.Columnheader, new() { Name = "Actions", Exact = true })).ToBeVisibleAsync();
        // Every cell of the key's row shares the row's top and bottom (the action cell once sat 13 px higher), and the name and
        // the prefix keep to one line.
        var row = page.GetByTestId("keys").Locator("tbody tr").Filter(new() { HasText = name });
        var boxes = new List<LocatorBoundingBoxResult>();
        foreach (var cell in await row.Locator("td").AllAsync()) boxes.Add((await cell.BoundingBoxAsync())!);
        Assert.All(boxes, b => Assert.Equal((boxes[0].Y, boxes[0].Height), (b.Y, b.Height), (x, y) => Math.Abs(x.Item1 - y.Item1) < 1 && Math.Abs(x.Item2 - y.Item2) < 1));
        Assert.Equal(1, await AdminBrowser.LinesAsync(row.Locator("td").Nth(0)));
        Assert.Equal(1, await AdminBrowser.LinesAsync(row.Locator("td").Nth(2)));
        await page.Mouse.MoveAsync(0, 0);
        await AdminBrowser.ScreenshotAsync(page, "keys");

        using var client = env.Gateway.Client(key);
        HttpResponseMessage answer;
        var deadline = Environment.TickCount64 + 30_000; // the API instance learns of the key by NOTIFY (bound for a loaded machine)
        do answer = await client.PostAsync("/v1/chat/completions", Json("""{"model":"mock","messages":[{"role":"user","content":"hi"}]}"""));
        while (answer.StatusCode == HttpStatusCode.Unauthorized && Environment.TickCount64 < deadline);
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
    }

    private static readonly LocatorGetByLabelOptions ExactLabel = new() { Exact = true };

    /// <summary>Chat requests until the answer's <c>model</c> is <paramref name="expected"/> (the API instance learns of changes by NOTIFY).</summary>
    private static async Task<string?> ServedModelAsync(HttpClient client, string alias, string expected)
    {
        string? served = null;
        var deadline = Environment.TickCount64 + 30_000;
        do
        {
            var answer = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"hi"}]}"""));
            served = answer.IsSuccessStatusCode ? (await answer.Content.ReadFromJsonAsync<JsonObject>())!["model"]!.GetValue<string>() : $"HTTP {(int)answer.StatusCode}";
            if (served == expected) return served;
            await Task.Delay(50);
        }
        while (Environment.TickCount64 < deadline);
        return served;
    }

    private async Task<List<string>> AuditActionsAsync(string actor, string entityId)
    {
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        return (await db.QueryAsync<string>("SELECT action FROM audit_log WHERE actor = @actor AND entity_id = @entityId ORDER BY id",
            new { actor, entityId })).AsList();
    }

    [Fact]
    public async Task Admin_EditsARuleInTheRoutingPage_AndTheApiRoutesTheVirtualAliasAsTheRuleSays()
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Admin);
        var (key, _) = await env.Gateway.CreateKeyAsync();
        var virtualAlias = "cheap-" + Guid.NewGuid().ToString("N")[..8];
        var rule = "to-mini-" + Guid.NewGuid().ToString("N")[..8];
        var page = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(page, email, password);

        // A fresh load of the page and its own circuit, as the other page tests do: under load, a click right after an
        // in-app navigation sometimes opened nothing.
        await page.GotoAsync("/routing");
        await AdminBrowser.WaitInteractiveAsync(page);
        var dialog = await AdminBrowser.OpenDialogAsync(page, page.GetByRole(AriaRole.Button, new() { Name = "Add rule" }));
        await dialog.GetByLabel("Name", ExactLabel).FillAsync(rule);
        await dialog.GetByLabel("Priority", ExactLabel).FillAsync("1");
        await dialog.GetByLabel("Asked models", ExactLabel).FillAsync(virtualAlias);
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Add rule" }).ClickAsync();
        await Assertions.Expect(dialog.GetByText("'targets' needs at least one model.")).ToBeVisibleAsync(); // the validator's words, inline
        await dialog.GetByLabel("Target model 1", ExactLabel).FillAsync("mock");
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Add rule" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Cell, new() { Name = rule, Exact = true })).ToBeVisibleAsync();
        using var client = env.Gateway.Client(key);
        Assert.Equal("mock-1", await ServedModelAsync(client, virtualAlias, "mock-1"));

        await page.GetByRole(AriaRole.Button, new() { Name = $"Edit rule {rule}", Exact = true }).ClickAsync();
        await dialog.GetByLabel("Target model 1", ExactLabel).FillAsync("mock-mini");
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await Assertions.Expect(dialog).ToHaveCountAsync(0);
        Assert.Equal("mock-mini-1", await ServedModelAsync(client, virtualAlias, "mock-mini-1"));

        await page.GetByLabel("Chat request (JSON)", new() { Exact = true }).FillAsync(
            $$"""{"model":"{{virtualAlias}}","messages":[{"role":"user","content":"What would happen?"}]}""");
        await page.GetByRole(AriaRole.Button, new() { Name = "Test route" }).ClickAsync();
        await Assertions.Expect(page.GetByTestId("route-test-rule")).ToHaveTextAsync(rule);
        await Assertions.Expect(page.GetByTestId("route-test-candidates")).ToContainTextAsync("mock-mini-1");
        await AdminBrowser.DismissNoticesAsync(page);
        await page.Mouse.MoveAsync(0, 0);
        await AdminBrowser.ScreenshotAsync(page, "routing");
        Assert.Equal(["route.create", "route.update"], await AuditActionsAsync(email, rule));
    }

    [Fact]
    public async Task Admin_MovesDisablesAndDeletesRules_AndTheApiFollows()
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Admin);
        var (key, _) = await env.Gateway.CreateKeyAsync();
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var (virtualAlias, first, second) = ("ordered-" + suffix, "first-" + suffix, "second-" + suffix);
        using (var admin = env.Gateway.Admin())
        {
            foreach (var (name, priority, target) in new[] { (first, 7001, "mock"), (second, 7002, "mock-mini") })
            {
                (await admin.PutAsync($"/admin/routes/{name}",
                    Json($$"""{"priority":{{priority}},"match":{"models":["{{virtualAlias}}"]},"targets":[{"model":"{{target}}"}]}"""))).EnsureSuccessStatusCode();
            }
        }
        using var client = env.Gateway.Client(key);
        Assert.Equal("mock-1", await ServedModelAsync(client, virtualAlias, "mock-1"));
        var page = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(page, email, password);
        await page.GetByRole(AriaRole.Link, new() { Name = "Routing" }).ClickAsync();

        await page.GetByRole(AriaRole.Button, new() { Name = $"Move {second} up", Exact = true }).ClickAsync();
        Assert.Equal("mock-mini-1", await ServedModelAsync(client, virtualAlias, "mock-mini-1"));
        await page.GetByRole(AriaRole.Switch, new() { Name = $"Enabled {second}", Exact = true }).UncheckAsync();
        Assert.Equal("mock-1", await ServedModelAsync(client, virtualAlias, "mock-1"));
        // The disable re-renders the table; a click landing during that render is dropped, so it is repeated if no dialog shows.
        var confirm = await AdminBrowser.OpenDialogAsync(page, page.GetByRole(AriaRole.Button, new() { Name = $"Delete rule {first}", Exact = true }));
        await confirm.GetByRole(AriaRole.Button, new() { Name = "Delete" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Cell, new() { Name = first, Exact = true })).ToHaveCountAsync(0);

        Assert.Equal("HTTP 404", await ServedModelAsync(client, virtualAlias, "HTTP 404")); // no enabled rule left for the virtual alias
        Assert.Equal(["route.update", "route.delete"], await AuditActionsAsync(email, first));
        Assert.Equal(["route.update", "route.update"], await AuditActionsAsync(email, second));
    }

    [Fact]
    public async Task Admin_AddsAProviderAndModel_TestsTheConnection_AndTheModelServes()
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Admin);
        var variable = "GATEWAY_SECRET_ADMIN_PAGE_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        Environment.SetEnvironmentVariable(variable, "sk-admin-page-secret");
        var provider = "upstream-" + Guid.NewGuid().ToString("N")[..8];
        var alias = provider + "/gpt-4o-mini";
        var page = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(page, email, password);

        await page.GetByRole(AriaRole.Link, new() { Name = "Providers & models" }).ClickAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Add provider" }).ClickAsync();
        var dialog = page.GetByRole(AriaRole.Dialog);
        await dialog.GetByLabel("Name", ExactLabel).FillAsync(provider);
        await dialog.GetByLabel("Base URL", ExactLabel).FillAsync(env.Upstream.BaseUrl);
        await dialog.GetByLabel("Secret reference", ExactLabel).FillAsync($"env:{variable}");
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Add provider" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Cell, new() { Name = provider, Exact = true })).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Cell, new() { Name = $"env:{variable}", Exact = true })).ToBeVisibleAsync();

        await page.GetByRole(AriaRole.Button, new() { Name = $"Add a model to {provider}", Exact = true }).ClickAsync();
        // Every field's label shows whole (one once read "Cached input price (USD / 1M toke").
        await Assertions.Expect(dialog.GetByLabel("Cached input price", ExactLabel)).ToBeVisibleAsync();
        var cut = await dialog.Locator("label.mud-input-label").EvaluateAllAsync<string[]>(
            "labels => labels.filter(l => l.scrollWidth > l.clientWidth + 1).map(l => l.textContent)");
        Assert.Empty(cut);
        await page.Mouse.MoveAsync(0, 0);
        await AdminBrowser.ScreenshotAsync(page, "model-dialog");
        await dialog.GetByLabel("Alias", ExactLabel).FillAsync(alias);
        await dialog.GetByLabel("Upstream model", ExactLabel).FillAsync("gpt-4o-mini");
        await dialog.GetByLabel("Input price (USD / 1M tokens)", ExactLabel).FillAsync("0.15");
        await dialog.GetByLabel("Output price (USD / 1M tokens)", ExactLabel).FillAsync("0.6");
        await dialog.GetByLabel("Context window", ExactLabel).FillAsync("128000");
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Add model" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Cell, new() { Name = alias, Exact = true })).ToBeVisibleAsync();

        await page.GetByRole(AriaRole.Button, new() { Name = $"Test connection {provider}", Exact = true }).ClickAsync();
        await Assertions.Expect(page.GetByTestId($"connection-{provider}")).ToContainTextAsync("OK");
        await AdminBrowser.DismissNoticesAsync(page);
        await page.Mouse.MoveAsync(0, 0);
        await AdminBrowser.ScreenshotAsync(page, "providers");

        Assert.Contains(env.Upstream.Requests, r => r.Path == "/v1/models" && r.Authorization == "Bearer sk-admin-page-secret");
        var (key, _) = await env.Gateway.CreateKeyAsync();
        using var client = env.Gateway.Client(key);
        Assert.Equal("gpt-4o-mini-2024-07-18", await ServedModelAsync(client, alias, "gpt-4o-mini-2024-07-18"));
        Assert.Equal(["provider.create"], await AuditActionsAsync(email, provider));
        Assert.Equal(["model.create"], await AuditActionsAsync(email, alias));
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
        await AdminBrowser.ScreenshotAsync(page, "not-authorized");
        await page.GetByRole(AriaRole.Link, new() { Name = "Back to the app" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Level = 1, Name = "Spend" })).ToBeVisibleAsync();
    }

    [Fact]
    public async Task DeniedPage_BackToTheApp_IsAButtonLikeLink()
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Finance);
        var page = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(page, email, password);

        await page.GotoAsync("/account/denied");
        var back = page.GetByRole(AriaRole.Link, new() { Name = "Back to the app" });
        await Assertions.Expect(back).ToBeVisibleAsync();
        // Not plain text: it has a filled background and no underline.
        Assert.Equal("rgb(89, 74, 226)", await back.EvaluateAsync<string>("e => getComputedStyle(e).backgroundColor"));
        await AdminBrowser.ScreenshotAsync(page, "denied");
        await back.ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Level = 1, Name = "Spend" })).ToBeVisibleAsync();
    }

    [Theory]
    [InlineData("/account/login")]
    [InlineData("/")]
    [InlineData("/favicon.svg")]
    public async Task EveryAnswer_CarriesTheSecurityHeaders(string path)
    {
        using var client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = browser.App.BaseAddress };

        var response = await client.GetAsync(path);

        Assert.Equal("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.Equal("same-origin", response.Headers.GetValues("Referrer-Policy").Single());
        // Blazor adds its own "frame-ancestors 'self'" to interactive pages; a browser enforces every policy, so 'none' holds.
        Assert.Contains(response.Headers.GetValues("Content-Security-Policy"), p => p.Contains("frame-ancestors 'none'", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Favicon_IsLinkedAndServed_AndPagesLoadWithoutA404()
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Admin);
        var page = await browser.NewPageAsync();
        var missing = new System.Collections.Concurrent.ConcurrentQueue<string>();
        page.Response += (_, response) =>
        {
            if (response.Status == 404) missing.Enqueue(response.Url);
        };

        await AdminBrowser.SignInAsync(page, email, password);
        foreach (var path in (string[])["/", "/keys", "/audit"])
        {
            await page.GotoAsync(path);
            await AdminBrowser.WaitInteractiveAsync(page);
        }
        var href = await page.Locator("link[rel=icon]").GetAttributeAsync("href");
        Assert.NotNull(href);
        var icon = await page.APIRequest.GetAsync(href);

        Assert.Equal(200, icon.Status);
        Assert.StartsWith("image/svg+xml", icon.Headers["content-type"], StringComparison.Ordinal);
        Assert.Empty(missing);
    }

    [Fact]
    public async Task HostileKeyName_ShowsAsText_InTheKeysTableAndTheAuditLog()
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var name = $"<img src=x onerror=alert(1)> {suffix}";
        var (_, keyId) = await env.Gateway.CreateKeyAsync(name: name);
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Admin);
        var page = await browser.NewPageAsync();
        var alerts = 0;
        page.Dialog += (_, dialog) =>
        {
            Interlocked.Increment(ref alerts);
            _ = dialog.DismissAsync();
        };
        await AdminBrowser.SignInAsync(page, email, password);

        await page.GotoAsync("/keys");
        await AdminBrowser.WaitInteractiveAsync(page);
        await page.GetByLabel("Search").FillAsync(suffix);
        await Assertions.Expect(page.GetByTestId("keys").GetByRole(AriaRole.Cell, new() { Name = name, Exact = true })).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByTestId("keys").Locator("img")).ToHaveCountAsync(0);

        await page.GotoAsync("/audit");
        await AdminBrowser.WaitInteractiveAsync(page);
        await page.GetByLabel("Contains").FillAsync(keyId.ToString());
        await Assertions.Expect(page.GetByText("1-1 of 1")).ToBeVisibleAsync();
        // "Which" names the key (the id stays beside it and in the tooltip); the name is text, not markup.
        var target = page.GetByTestId("audit").GetByTestId("audit-target");
        await Assertions.Expect(target).ToHaveTextAsync(name);
        await Assertions.Expect(target).ToHaveAttributeAsync("title", keyId.ToString());
        await Assertions.Expect(page.GetByTestId("audit").GetByTestId("audit-target-id")).ToHaveTextAsync(keyId.ToString()[..8] + "…");
        await Assertions.Expect(page.GetByTestId("audit").Locator("img")).ToHaveCountAsync(0);
        await page.Mouse.MoveAsync(0, 0);
        await AdminBrowser.ScreenshotAsync(page, "audit-hostile-name");
        Assert.Equal(0, alerts);
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
        // Spent (a few millionths of a dollar) and the budget read as different amounts, as they are.
        await Assertions.Expect(page.GetByTestId("keys").Locator("tbody tr").Filter(new() { HasText = name }).GetByTestId("spend-bar-text"))
            .ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^\$0\.0000\d+ of \$0\.00001$"));

        // Within a second every instance has the new budget: the spend so far is over it, so the next requests go to mock-mini.
        HttpResponseMessage downgraded;
        var deadline = Environment.TickCount64 + 30_000;
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
        await Assertions.Expect(row.GetByTestId("audit-target")).ToHaveTextAsync(name); // the key's name, not only its id
        await row.GetByRole(AriaRole.Button).First.ClickAsync(); // before → after
        await Assertions.Expect(page.Locator("pre.audit-json").Last).ToContainTextAsync("\"daily_budget_usd\": 0.00001");
        await AdminBrowser.ScreenshotAsync(page, "audit");
    }

    [Fact]
    public async Task Admin_SetsAKeysCacheSharingInTheKeyDialog_TheRuleShowsUnderTheField_AndTheApiReturnsIt()
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Admin);
        var name = "cache-" + Guid.NewGuid().ToString("N")[..8];
        var (_, keyId) = await env.Gateway.CreateKeyAsync(name: name);
        var page = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(page, email, password);
        await page.GotoAsync("/keys");
        await AdminBrowser.WaitInteractiveAsync(page);

        var dialog = await AdminBrowser.OpenDialogAsync(page, page.GetByLabel($"Edit {name}"));
        await dialog.GetByLabel("Cache answers for (seconds)").FillAsync("300");
        // Shared with a team, but the key has no tags: the admin API's rule, under the field, and nothing saved.
        await dialog.GetByLabel("Cached answers shared with").ClickAsync();
        await page.GetByRole(AriaRole.Option, new() { Name = "Keys with exactly these tags", Exact = true }).ClickAsync();
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await Assertions.Expect(dialog.GetByText("'cache_scope' tags shares cached answers", new() { Exact = false })).ToBeVisibleAsync();
        using var admin = env.Gateway.Admin();
        Assert.Equal("key", (await admin.GetFromJsonAsync<JsonObject>($"/admin/keys/{keyId}"))!["cache_scope"]!.GetValue<string>());

        await dialog.GetByLabel("Cached answers shared with").ClickAsync();
        await page.GetByRole(AriaRole.Option, new() { Name = "Every key set to global", Exact = true }).ClickAsync();
        await AdminBrowser.ScreenshotAsync(page, "key-cache-scope");
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Dialog)).ToHaveCountAsync(0);

        var saved = (await admin.GetFromJsonAsync<JsonArray>("/admin/keys"))!.Single(k => k!["id"]!.GetValue<Guid>() == keyId)!;
        Assert.Equal(("global", 300), (saved["cache_scope"]!.GetValue<string>(), saved["cache_ttl_seconds"]!.GetValue<int>()));
        // Opened again, the dialog shows what is stored, in words.
        dialog = await AdminBrowser.OpenDialogAsync(page, page.GetByLabel($"Edit {name}"));
        await Assertions.Expect(dialog.GetByRole(AriaRole.Combobox, new() { Name = "Cached answers shared with" })).ToHaveValueAsync("Every key set to global");
        await Assertions.Expect(dialog.GetByLabel("Cache answers for (seconds)")).ToHaveValueAsync("300");
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

    [Fact]
    public async Task IssueKeyForm_BudgetWithMoreDecimalsThanStored_ShowsTheRuleUnderTheField_AndIssuesNothing()
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Admin);
        var page = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(page, email, password);
        await page.GotoAsync("/keys");
        await AdminBrowser.WaitInteractiveAsync(page);

        var dialog = await AdminBrowser.OpenDialogAsync(page, page.GetByRole(AriaRole.Button, new() { Name = "Issue key" }));
        await dialog.GetByLabel("Name", new() { Exact = true }).FillAsync("precise-" + Guid.NewGuid().ToString("N")[..8]);
        await dialog.GetByLabel("Daily budget (USD)").FillAsync("0.0000001");
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Issue key" }).ClickAsync();

        // Not rounded to $0 without a word: the amount has more decimals than are stored.
        await Assertions.Expect(dialog.GetByText("'daily_budget_usd' has more than 6 decimals", new() { Exact = false })).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByTestId("new-key")).ToHaveCountAsync(0);
    }

    [Theory]
    [InlineData("/providers", "Providers & models", "Add provider")]
    [InlineData("/routing", "Routing", "Add rule")]
    public async Task FinanceUser_CannotOpenProvidersOrRouting(string path, string link, string button)
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Finance);
        var page = await browser.NewPageAsync();

        await AdminBrowser.SignInAsync(page, email, password);
        await Assertions.Expect(page.GetByRole(AriaRole.Link, new() { Name = link })).ToHaveCountAsync(0);
        await page.GotoAsync(path);

        await Assertions.Expect(page.GetByTestId("not-authorized")).ToBeVisibleAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Button, new() { Name = button })).ToHaveCountAsync(0);
    }
}
