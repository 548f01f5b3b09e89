namespace Gateway.Tests.Fixtures;

/// <summary>
/// The admin app checking every session against its user each second (<c>Admin:SecurityStampIntervalSeconds=1</c>), for tests
/// of sessions that must end; shared by one test class (its browser is <see cref="AdminBrowser"/>'s).
/// </summary>
public sealed class QuickStampHost : IAsyncLifetime
{
    public const int IntervalSeconds = 1;

    public AdminHost App { get; private set; } = null!;

    public ValueTask InitializeAsync()
    {
        App = new AdminHost(TestEnvironment.Current.Postgres.ConnectionString,
            new() { ["Admin:SecurityStampIntervalSeconds"] = IntervalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        if (App is not null) await App.DisposeAsync();
    }
}
