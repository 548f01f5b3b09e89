extern alias admin;

using System.Net;
using System.Text.RegularExpressions;
using admin::Gateway.Admin.Account;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Fixtures;

/// <summary>The real admin app (Blazor Server) on a real loopback port, against the test database.</summary>
public sealed partial class AdminHost : WebApplicationFactory<admin::Gateway.Admin.Components.App>
{
    private readonly string _connectionString;
    private readonly Dictionary<string, string?> _settings;
    private readonly Action<IServiceCollection>? _services;
    private readonly string _keysDir = Path.Combine(Path.GetTempPath(), "gw-admin-dp-" + Guid.NewGuid().ToString("N")[..12]);

    /// <param name="services">Registrations added after the app's own (e.g. a password hasher that counts its calls).</param>
    public AdminHost(string connectionString, Dictionary<string, string?>? settings = null, Action<IServiceCollection>? services = null)
    {
        _connectionString = connectionString;
        _settings = settings ?? [];
        _services = services;
        UseKestrel(0);
        StartServer();
    }

    public Uri BaseAddress => ClientOptions.BaseAddress;

    /// <summary>What this host logged (Warning and up, as configured below): tests assert no unhandled exception reached it.</summary>
    public CapturedLogs Logs { get; } = new();

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("ConnectionStrings:Gateway", _connectionString);
        builder.UseSetting("Gateway:SeedFile", "");
        builder.UseSetting("Gateway:DataProtectionKeysDirectory", _keysDir);
        builder.UseSetting("Logging:LogLevel:Default", "Warning");
        foreach (var (key, value) in _settings) builder.UseSetting(key, value);
        builder.ConfigureLogging(logging =>
        {
            HostLog.RouteHere(logging, "admin"); // not the console: a test's output shows it when the test fails
            logging.AddProvider(Logs);
        });
        if (_services is not null) builder.ConfigureTestServices(_services);
        builder.ConfigureTestServices(FactoryAddressGate.AddFirst); // after the test's own: first of all hosted services
    }

    /// <summary>
    /// Submits the sign-in form as a browser without scripts would: reads the page (antiforgery cookie and token), then posts
    /// it. A success is a redirect that sets the sign-in cookie; a failure shows the form again with its error.
    /// </summary>
    public static async Task<HttpResponseMessage> PostSignInAsync(HttpClient client, string email, string password,
        string? forwardedFor = null)
    {
        var page = await client.GetStringAsync(new Uri("/account/login", UriKind.Relative));
        var fields = HiddenInput().Matches(page).ToDictionary(m => WebUtility.HtmlDecode(m.Groups["name"].Value),
            m => WebUtility.HtmlDecode(m.Groups["value"].Value));
        fields["Input.Email"] = email;
        fields["Input.Password"] = password;
        using var post = new HttpRequestMessage(HttpMethod.Post, "/account/login") { Content = new FormUrlEncodedContent(fields) };
        if (forwardedFor is not null) post.Headers.Add("X-Forwarded-For", forwardedFor);
        return await client.SendAsync(post, HttpCompletionOption.ResponseContentRead);
    }

    [GeneratedRegex("""<input type="hidden" name="(?<name>[^"]+)" value="(?<value>[^"]*)""")]
    private static partial Regex HiddenInput();

    /// <summary>The audit log's actor of the changes tests make through <see cref="Users"/>.</summary>
    public const string TestActor = "test";

    /// <summary>The app's own user service (what the Users page calls).</summary>
    public AdminUsers Users => Services.GetRequiredService<AdminUsers>();

    /// <summary>Creates a user through the app's own service; returns its e-mail and generated password.</summary>
    public async Task<(string Email, string Password)> CreateUserAsync(string role)
    {
        var email = $"{role.ToLowerInvariant()}-{Guid.NewGuid():N}"[..20] + "@example.com";
        var (password, error) = await Users.CreateAsync(TestActor, email, role, CancellationToken.None);
        Assert.Null(error);
        return (email, password!);
    }

    /// <summary>The id of the user with this e-mail.</summary>
    public async Task<string> UserIdAsync(string email)
    {
        await using var scope = Services.CreateAsyncScope();
        var user = await scope.ServiceProvider.GetRequiredService<UserManager<admin::Gateway.Admin.Data.AdminUser>>().FindByEmailAsync(email);
        return Assert.IsType<admin::Gateway.Admin.Data.AdminUser>(user).Id;
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        if (Directory.Exists(_keysDir)) Directory.Delete(_keysDir, recursive: true);
    }
}
