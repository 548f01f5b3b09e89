extern alias admin;

using admin::Gateway.Admin.Account;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Fixtures;

/// <summary>The real admin app (Blazor Server) on a real loopback port, against the test database.</summary>
public sealed class AdminHost : WebApplicationFactory<admin::Gateway.Admin.Components.App>
{
    private readonly string _connectionString;
    private readonly Dictionary<string, string?> _settings;
    private readonly string _keysDir = Path.Combine(Path.GetTempPath(), "gw-admin-dp-" + Guid.NewGuid().ToString("N")[..12]);

    public AdminHost(string connectionString, Dictionary<string, string?>? settings = null)
    {
        _connectionString = connectionString;
        _settings = settings ?? [];
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
    }

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
