using Microsoft.Playwright;

namespace Gateway.Tests.Fixtures;

/// <summary>
/// The admin app and a headless Debian Chromium (<c>/usr/bin/chromium</c>, installed by .ci/run; Playwright never
/// downloads a browser here), shared by one test class. Each test gets its own browser context (cookies).
/// </summary>
public sealed class AdminBrowser : IAsyncLifetime
{
    public const string ChromiumPath = "/usr/bin/chromium";

    private IPlaywright? _playwright;

    public AdminHost App { get; private set; } = null!;

    public IBrowser Browser { get; private set; } = null!;

    /// <summary>Where the tests save screenshots of the main pages (a test artefact).</summary>
    public static string ScreenshotDir { get; } = Path.Combine(AppContext.BaseDirectory, "screenshots");

    public async ValueTask InitializeAsync()
    {
        App = new AdminHost(TestEnvironment.Current.Postgres.ConnectionString);
        _playwright = await Playwright.CreateAsync();
        // Generous, as the pages' own timeout: Blazor Server answers over a circuit, the suite shares 2 cores, and late in a run the
        // providers page lists every provider and model the other tests made: after "Add model" its table took 5.3 s to show the
        // new row in a full local run (the whole test takes 7 s alone), and an earlier full run failed there at 15 s.
        Assertions.SetDefaultExpectTimeout(30_000);
        Browser = await _playwright.Chromium.LaunchAsync(new() { ExecutablePath = ChromiumPath, Headless = true, Args = ["--no-sandbox"] });
        Directory.CreateDirectory(ScreenshotDir);
    }

    /// <summary>A fresh browser context and page on the app.</summary>
    public async Task<IPage> NewPageAsync(AdminHost? app = null)
    {
        var context = await Browser.NewContextAsync(new() { BaseURL = (app ?? App).BaseAddress.ToString(), ViewportSize = new() { Width = 1400, Height = 900 } });
        context.SetDefaultTimeout(30_000); // generous: the machine has 2 cores and the rest of the suite runs alongside
        return await context.NewPageAsync();
    }

    /// <summary>Signs in through the form and waits until the app's circuit is interactive.</summary>
    public static async Task SignInAsync(IPage page, string email, string password)
    {
        await page.GotoAsync("/account/login");
        await page.FillAsync("#email", email);
        await page.FillAsync("#password", password);
        await page.ClickAsync("#sign-in");
        await WaitInteractiveAsync(page);
    }

    /// <summary>Blazor Server: clicks before the circuit is up are lost; the layout renders a marker once it is.</summary>
    public static Task WaitInteractiveAsync(IPage page) =>
        page.Locator("[data-testid=interactive]").WaitForAsync(new() { State = WaitForSelectorState.Attached });

    /// <summary>
    /// Clicks a button that opens a dialog, again if no dialog shows: under load a click can land while the page is still
    /// being rendered after navigation, and Blazor drops it.
    /// </summary>
    public static async Task<ILocator> OpenDialogAsync(IPage page, ILocator button)
    {
        var dialog = page.GetByRole(AriaRole.Dialog);
        for (var attempt = 1; ; attempt++)
        {
            await button.ClickAsync();
            try
            {
                await dialog.WaitForAsync(new() { Timeout = 5_000 });
                return dialog;
            }
            catch (TimeoutException) when (attempt < 4)
            {
                // the click was lost; try again
            }
        }
    }

    /// <summary>
    /// Types <paramref name="text"/> into an autocomplete and picks the suggestion holding it, typing again if none shows: as
    /// with <see cref="OpenDialogAsync"/>, under load the input can land while the page is still being rendered, and Blazor
    /// drops it (the suggestion itself must still come from the server).
    /// </summary>
    public static async Task PickAsync(IPage page, ILocator input, string text)
    {
        var suggestion = page.Locator(".mud-popover-open .mud-list-item", new() { HasText = text });
        for (var attempt = 1; ; attempt++)
        {
            await input.FillAsync(text);
            try
            {
                await suggestion.WaitForAsync(new() { Timeout = 10_000 });
                await suggestion.ClickAsync();
                return;
            }
            catch (TimeoutException) when (attempt < 4)
            {
                await input.FillAsync(""); // typed again from empty, so the autocomplete sees a change and searches
            }
        }
    }

    /// <summary>Closes the notices (snackbars) in the top corner, which would hide the page's buttons in a screenshot.</summary>
    public static async Task DismissNoticesAsync(IPage page)
    {
        var close = page.Locator(".mud-snackbar button");
        for (var i = await close.CountAsync() - 1; i >= 0; i--)
        {
            try
            {
                await close.Nth(i).ClickAsync(new() { Timeout = 2000 });
            }
            catch (TimeoutException)
            {
                // it closed on its own meanwhile
            }
        }
        await Assertions.Expect(page.Locator(".mud-snackbar")).ToHaveCountAsync(0);
    }

    /// <summary>How many lines the element's text takes as rendered (1: it did not wrap).</summary>
    public static Task<int> LinesAsync(ILocator element) => element.EvaluateAsync<int>("""
        e => {
            const bottoms = new Set();
            const texts = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
            for (let text = texts.nextNode(); text; text = texts.nextNode()) {
                const range = document.createRange();
                range.selectNodeContents(text);
                for (const r of range.getClientRects()) if (r.width > 0) bottoms.add(Math.round(r.bottom));
            }
            return bottoms.size;
        }
        """);

    public static Task ScreenshotAsync(IPage page, string name) =>
        page.ScreenshotAsync(new() { Path = Path.Combine(ScreenshotDir, name + ".png"), FullPage = true });

    public async ValueTask DisposeAsync()
    {
        if (Browser is not null) await Browser.DisposeAsync();
        _playwright?.Dispose();
        if (App is not null) await App.DisposeAsync();
    }
}
