extern alias admin;

using System.Globalization;
using System.Net;
using System.Text;
using admin::Gateway.Admin.Data;
using Dapper;
using Gateway.Tests.Fixtures;
using Microsoft.Playwright;
using Npgsql;

namespace Gateway.Tests.Admin;

/// <summary>The spend dashboard in a real browser (Debian's Chromium) against the real app, API and database.</summary>
public sealed class SpendPageTests(TestEnvironment env, AdminBrowser browser) : IClassFixture<AdminBrowser>
{
    private static List<string[]> Rows(string csv) =>
        [.. csv.Split("\r\n", StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(line => line.Split(','))];

    /// <summary>A Finance user's page on the spend dashboard, interactive; with <paramref name="key"/>, filtered to that key.</summary>
    private async Task<IPage> SpendPageAsync(string? key = null)
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Finance);
        var page = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(page, email, password);
        await page.GotoAsync("/");
        await AdminBrowser.WaitInteractiveAsync(page);
        if (key is null) return page;
        await AdminBrowser.PickAsync(page, page.GetByLabel("Key", new() { Exact = true }), key);
        return page;
    }

    [Fact]
    public async Task FinanceUser_FiltersToAKey_SeesItsCost_AndExportsCsvsThatMatchTheDatabase()
    {
        var name = "spend-" + Guid.NewGuid().ToString("N")[..8];
        var (key, keyId) = await env.Gateway.CreateKeyAsync(name);
        using (var client = env.Gateway.Client(key))
        {
            foreach (var text in (string[])["hello", "how are you today?", "tell me something long enough to cost a little more"])
                Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions",
                    Json($$"""{"model":"mock","messages":[{"role":"user","content":"{{text}}"}]}"""))).StatusCode);
        }
        var deadline = Environment.TickCount64 + 30_000;
        while ((await env.UsageRowsForKeyAsync(keyId)).Count < 3 && Environment.TickCount64 < deadline) await Task.Delay(50);
        var usage = await env.UsageRowsForKeyAsync(keyId);
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        var groups = await db.ExecuteScalarAsync<long>("SELECT count(DISTINCT (day, model)) FROM usage_daily_models WHERE key_id = @keyId", new { keyId });
        var cost = usage.Sum(r => r.CostUsd);
        var page = await SpendPageAsync(name);

        Assert.Equal(3, usage.Count);
        Assert.True(cost > 0);
        await Assertions.Expect(page.GetByTestId("total-cost")).ToHaveTextAsync("$" + cost.ToString("0.00####", CultureInfo.InvariantCulture));
        await Assertions.Expect(page.GetByTestId("requests")).ToHaveTextAsync("3");
        await Assertions.Expect(page.GetByTestId("error-rate")).ToHaveTextAsync("0.0%");
        await Assertions.Expect(page.GetByTestId("usage-rows").Locator("tbody tr")).ToHaveCountAsync(3);
        await Assertions.Expect(page.GetByTestId("latency")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^\d+ / \d+ ms$"));
        // Time, key and provider keep to one line; the model too (with the asked alias on a line of its own).
        var cells = page.GetByTestId("usage-rows").Locator("tbody tr").First.Locator("td");
        Assert.Equal(OneLineEach, await LinesAsync(cells, 0, 1, 3, 4));

        await Assertions.Expect(page.GetByTestId("groups").Locator("tbody tr").First.Locator("td").First).ToHaveTextAsync("mock-1");
        await page.GetByText("By provider", new() { Exact = true }).ClickAsync();
        await Assertions.Expect(page.GetByTestId("groups").Locator("tbody tr").First.Locator("td").First).ToHaveTextAsync("mock");
        await page.GetByText("By model", new() { Exact = true }).ClickAsync();
        await Assertions.Expect(page.GetByTestId("groups").Locator("tbody tr").First.Locator("td").First).ToHaveTextAsync("mock-1");

        var spendCsv = await DownloadAsync(page, "Export CSV");
        var usageCsv = await DownloadAsync(page, "Export usage rows");
        await page.Mouse.MoveAsync(0, 0);
        await AdminBrowser.ScreenshotAsync(page, "spend");

        // A narrow window: the rows still keep to one line each, and the grid scrolls sideways instead.
        await page.SetViewportSizeAsync(900, 900);
        await Assertions.Expect(cells.Nth(0)).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"));
        Assert.Equal(OneLineEach, await LinesAsync(cells, 0, 1, 3, 4));
        Assert.True(await page.GetByTestId("usage-rows").Locator(".mud-table-container").EvaluateAsync<bool>("e => e.scrollWidth > e.clientWidth"),
            "the usage grid does not scroll sideways on a narrow window");
        await AdminBrowser.ScreenshotAsync(page, "spend-narrow");
        await page.SetViewportSizeAsync(1400, 900);

        Assert.StartsWith("day,model,requests,errors,fallbacks,prompt_tokens,completion_tokens,cached_tokens,cost_usd\r\n", spendCsv,
            StringComparison.Ordinal);
        var daily = Rows(spendCsv);
        Assert.Equal(groups, daily.Count);
        Assert.Equal(3, daily.Sum(r => long.Parse(r[2], CultureInfo.InvariantCulture)));
        Assert.Equal(cost, daily.Sum(r => decimal.Parse(r[8], CultureInfo.InvariantCulture)));
        Assert.Equal(Math.Round(cost, 2), Math.Round(daily.Sum(r => decimal.Parse(r[8], CultureInfo.InvariantCulture)), 2));
        Assert.All(daily, r => Assert.Equal("mock-1", r[1]));

        Assert.StartsWith("request_id,occurred_at,key_id,key_name,", usageCsv, StringComparison.Ordinal);
        var raw = Rows(usageCsv);
        Assert.Equal(usage.Select(r => r.RequestId.ToString()).Order(StringComparer.Ordinal), raw.Select(r => r[0]).Order(StringComparer.Ordinal));
        Assert.All(raw, r => Assert.Equal((keyId.ToString(), name), (r[2], r[3])));
        var costColumn = Array.IndexOf(usageCsv[..usageCsv.IndexOf('\r', StringComparison.Ordinal)].Split(','), "cost_usd");
        Assert.Equal(cost, raw.Sum(r => decimal.Parse(r[costColumn], CultureInfo.InvariantCulture)));
    }

    /// <summary>
    /// Each toggle starts a load that cancels the one before; leaving the page cancels the one in flight. Neither may reach the
    /// circuit as an exception (that ends it: the page freezes, the error bar shows).
    /// </summary>
    [Fact]
    public async Task Grouping_ToggledQuicklyThenLeftMidLoad_LogsNoUnhandledError_AndTheAppStaysInteractive()
    {
        var (key, _) = await env.Gateway.CreateKeyAsync();
        using (var client = env.Gateway.Client(key))
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions",
                Json("""{"model":"mock","messages":[{"role":"user","content":"hi"}]}"""))).StatusCode);
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Admin);
        var page = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(page, email, password);
        await page.GotoAsync("/");
        await AdminBrowser.WaitInteractiveAsync(page);
        var groupColumn = page.GetByTestId("groups").Locator("thead th").First;
        ILocator Toggle(string name) => page.GetByRole(AriaRole.Checkbox, new() { Name = name, Exact = true }); // the table's title says "By model" too
        await Assertions.Expect(groupColumn).ToHaveTextAsync("Model");
        var logged = browser.App.Logs.Lines.Count;
        List<string> Logged() => [.. browser.App.Logs.Lines.Skip(logged)];

        try
        {
            // Ten clicks as fast as the browser takes them, each while the load of the one before still runs; the last is "By model".
            for (var i = 0; i < 10; i++) await Toggle(i % 2 == 0 ? "By provider" : "By model").ClickAsync();
            await Assertions.Expect(groupColumn).ToHaveTextAsync("Model");
            await Toggle("By provider").ClickAsync();
            await Assertions.Expect(groupColumn).ToHaveTextAsync("Provider");

            // A reload, and away to another page while it loads.
            await Toggle("By model").ClickAsync();
            await page.GetByRole(AriaRole.Link, new() { Name = "Keys", Exact = true }).ClickAsync();
            await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "API keys" })).ToBeVisibleAsync();

            // Same circuit (in-app navigation), still answering: back to the dashboard, whose toggle still works.
            await page.GetByRole(AriaRole.Link, new() { Name = "Spend", Exact = true }).ClickAsync();
            await Toggle("By provider").ClickAsync();
            await Assertions.Expect(groupColumn).ToHaveTextAsync("Provider");
            await Assertions.Expect(page.Locator("#blazor-error-ui")).ToBeHiddenAsync();
        }
        catch (PlaywrightException failed)
        {
            Assert.Fail($"{failed.Message}\nThe admin host logged:\n{string.Join('\n', Logged())}");
        }
        var lines = Logged();
        Assert.DoesNotContain(lines, line => line.StartsWith("Error ", StringComparison.Ordinal) || line.StartsWith("Critical ", StringComparison.Ordinal)
            || line.Contains("ObjectDisposedException", StringComparison.Ordinal) || line.Contains("Unhandled exception", StringComparison.Ordinal)
            || line.Contains("terminated", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task TopKeysChart_HostileKeyName_IsShownAsText_AndCreatesNoElement()
    {
        var marker = "z" + Guid.NewGuid().ToString("N")[..8];
        var name = $"<img id={marker} src=x onerror=alert(1)>";
        var (key, keyId) = await env.Gateway.CreateKeyAsync(name);
        using (var client = env.Gateway.Client(key))
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions",
                Json("""{"model":"mock","messages":[{"role":"user","content":"hello"}]}"""))).StatusCode);
        await Eventually.TrueAsync(async () => (await env.UsageRowsForKeyAsync(keyId)).Count == 1, what: "the usage row");
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Finance);
        var page = await browser.NewPageAsync();
        var dialogs = 0;
        page.Dialog += (_, dialog) => { dialogs++; _ = dialog.DismissAsync(); };
        await AdminBrowser.SignInAsync(page, email, password);
        await page.GotoAsync("/");
        await AdminBrowser.WaitInteractiveAsync(page);

        await AdminBrowser.PickAsync(page, page.GetByLabel("Key", new() { Exact = true }), marker);
        await Assertions.Expect(page.GetByTestId("requests")).ToHaveTextAsync("1");

        // The chart's label is the name cut to 17 characters: text, not an element.
        await Assertions.Expect(page.Locator(".mud-chart svg text", new() { HasText = "<img id=" })).Not.ToHaveCountAsync(0);
        Assert.Equal(0, await page.Locator($"#{marker}").CountAsync());
        Assert.Equal(0, await page.Locator(".mud-chart img").CountAsync());
        Assert.Equal(0, dialogs);
    }

    [Fact]
    public async Task Charts_LeaveOutWhatCostNothing_TheTableStillListsItsErrors_AndTheAxisIsInDollars()
    {
        var name = "zero-" + Guid.NewGuid().ToString("N")[..8];
        var missing = "no-such-model-" + Guid.NewGuid().ToString("N")[..8];
        var (key, keyId) = await env.Gateway.CreateKeyAsync(name);
        using (var client = env.Gateway.Client(key))
        {
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions",
                Json("""{"model":"mock","messages":[{"role":"user","content":"hello"}]}"""))).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await client.PostAsync("/v1/chat/completions",
                Json($$"""{"model":"{{missing}}","messages":[{"role":"user","content":"hello"}]}"""))).StatusCode);
        }
        var deadline = Environment.TickCount64 + 10_000;
        while ((await env.UsageRowsForKeyAsync(keyId)).Count < 2 && Environment.TickCount64 < deadline) await Task.Delay(50);
        var page = await SpendPageAsync(name);

        var groups = page.GetByTestId("groups").Locator("tbody tr");
        await Assertions.Expect(groups).ToHaveCountAsync(2);
        await Assertions.Expect(groups.Filter(new() { HasText = missing })).ToContainTextAsync("$0.00");
        var legend = page.Locator(".mud-chart-legend-item");
        await Assertions.Expect(legend).ToHaveCountAsync(1);
        await Assertions.Expect(legend).ToHaveTextAsync("mock-1");
        await Assertions.Expect(page.GetByText("millionths", new() { Exact = false })).ToHaveCountAsync(0);
        var axis = await page.Locator(".mud-chart svg text").AllTextContentsAsync();
        Assert.Contains(axis, t => t.StartsWith("$0.0000", StringComparison.Ordinal)); // a cheap day: dollars with the decimals it needs
        await page.Mouse.MoveAsync(0, 0);
        await AdminBrowser.ScreenshotAsync(page, "spend-charts");
    }

    [Fact]
    public async Task DateRangePicker_OpensWhollyInsideTheWindow_WithSevenWeekdayColumns()
    {
        var page = await SpendPageAsync();

        await page.Locator(".mud-picker input").First.ClickAsync();
        var popup = page.Locator(".mud-popover-open").Filter(new() { Has = page.Locator(".mud-picker-calendar") });
        await Assertions.Expect(popup).ToHaveCSSAsync("opacity", "1"); // opened (it fades in)

        // Every weekday label of the first month lies inside the pop-up's paper (which clips) and the pop-up inside the window.
        var labels = popup.Locator(".mud-picker-calendar-header-day").First.Locator(".mud-day-label");
        Assert.Equal(["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"], await labels.AllInnerTextsAsync());
        var paper = (await popup.Locator(".mud-picker-paper").BoundingBoxAsync())!;
        foreach (var label in await labels.AllAsync())
            Assert.True(Inside((await label.BoundingBoxAsync())!, paper), $"'{await label.InnerTextAsync()}' is cut off by the pop-up's edge");
        Assert.True(Inside(paper, new() { X = 0, Y = 0, Width = page.ViewportSize!.Width, Height = page.ViewportSize.Height }),
            "the pop-up leaves the window");
        // The title (the chosen range) shows whole: nothing scrolls or overflows in the toolbar.
        Assert.True(await popup.Locator(".mud-picker-toolbar").EvaluateAsync<bool>("e => e.scrollHeight <= e.clientHeight + 1 && e.scrollWidth <= e.clientWidth + 1"),
            "the pop-up's title overflows");
        await page.Mouse.MoveAsync(0, 0);
        await AdminBrowser.ScreenshotAsync(page, "spend-date-picker");
    }

    // Lines of a usage row's time, key, model (and the asked alias below it) and provider.
    private static readonly int[] OneLineEach = [1, 1, 2, 1];

    private static async Task<int[]> LinesAsync(ILocator cells, params int[] columns)
    {
        var lines = new int[columns.Length];
        for (var i = 0; i < columns.Length; i++) lines[i] = await AdminBrowser.LinesAsync(cells.Nth(columns[i]));
        return lines;
    }

    private static bool Inside(LocatorBoundingBoxResult inner, LocatorBoundingBoxResult outer) =>
        inner.X >= outer.X - 0.5 && inner.Y >= outer.Y - 0.5 && inner.X + inner.Width <= outer.X + outer.Width + 0.5
        && inner.Y + inner.Height <= outer.Y + outer.Height + 0.5;

    [Fact]
    public async Task SpendExport_WithoutSignIn_RedirectsToTheSignInPage()
    {
        var page = await browser.NewPageAsync();

        var response = await page.APIRequest.GetAsync("/export/spend.csv", new() { MaxRedirects = 0 });

        Assert.Equal(302, response.Status);
        Assert.Contains("/account/login", response.Headers["location"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task SpendExport_WithABadRange_Is400()
    {
        var (email, password) = await browser.App.CreateUserAsync(AdminRoles.Finance);
        var page = await browser.NewPageAsync();
        await AdminBrowser.SignInAsync(page, email, password);

        var response = await page.APIRequest.GetAsync("/export/usage.csv?from=2026-02-10&to=2026-02-01");

        Assert.Equal(400, response.Status);
    }

    private static async Task<string> DownloadAsync(IPage page, string button)
    {
        var download = await page.RunAndWaitForDownloadAsync(() => page.GetByRole(AriaRole.Link, new() { Name = button, Exact = true }).ClickAsync());
        Assert.Null(await download.FailureAsync());
        return await File.ReadAllTextAsync(await download.PathAsync(), Encoding.UTF8);
    }
}
