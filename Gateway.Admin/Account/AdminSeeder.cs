using Microsoft.Extensions.Options;

namespace Gateway.Admin.Account;

/// <summary>
/// At start-up, after Core's migrations: when the app has no user yet, creates the first Admin
/// (<c>Admin:FirstAdminEmail</c>) and prints its password once.
/// </summary>
/// <remarks>
/// Admin apps that start together on a fresh database (two replicas, or two test classes) would each see "no user yet" and
/// each insert the first Admin; the loser's insert hits the unique user name and its start-up fails. The check and the insert
/// run under <see cref="AdminUsers"/>' PostgreSQL advisory lock, so they take turns: the second one sees the user and creates
/// nothing, so exactly one Admin is created and one password printed.
/// </remarks>
public sealed class AdminSeeder(AdminUsers users, IOptions<AdminOptions> options) : IHostedService
{
    /// <summary>Whether this instance created the first Admin (and printed its password).</summary>
    public bool CreatedFirstAdmin { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var email = options.Value.FirstAdminEmail;
        var (password, error) = await users.CreateFirstAdminAsync(email, cancellationToken);
        CreatedFirstAdmin = password is not null;
        if (password is not null) await Console.Out.WriteLineAsync($"Admin user: {email}  password: {password} (shown once: keep it)");
        else if (error is not null) await Console.Error.WriteLineAsync($"First admin not created: {error}");
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
