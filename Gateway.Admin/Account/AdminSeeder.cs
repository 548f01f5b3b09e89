using Gateway.Admin.Data;
using Microsoft.Extensions.Options;

namespace Gateway.Admin.Account;

/// <summary>
/// At start-up, after Core's migrations: when the app has no user yet, creates the first Admin
/// (<c>Admin:FirstAdminEmail</c>) and prints its password once.
/// </summary>
public sealed class AdminSeeder(IServiceProvider services, IOptions<AdminOptions> options) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        var users = scope.ServiceProvider.GetRequiredService<AdminUsers>();
        if (users.Any()) return;
        var email = options.Value.FirstAdminEmail;
        var (password, error) = await users.CreateAsync(email, AdminRoles.Admin);
        await (error is null
            ? Console.Out.WriteLineAsync($"Admin user: {email}  password: {password} (shown once: keep it)")
            : Console.Error.WriteLineAsync($"First admin not created: {error}"));
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
