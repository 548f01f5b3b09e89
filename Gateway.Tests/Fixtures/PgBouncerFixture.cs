using System.Diagnostics;
using System.Net.Sockets;
using Npgsql;

namespace Gateway.Tests.Fixtures;

/// <summary>
/// A private PgBouncer (Debian's package, <c>/usr/sbin/pgbouncer</c>) in transaction pooling mode in front of the test
/// PostgreSQL server, on a free loopback port: any database name is passed through as the same name on the server.
/// Run as the postgres user when root (PgBouncer refuses to run as root).
/// </summary>
public sealed class PgBouncerFixture : IAsyncLifetime
{
    public const string Binary = "/usr/sbin/pgbouncer";

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "gw-pgb-" + Guid.NewGuid().ToString("N")[..12]);
    private Process? _process;
    private int _port;

    /// <summary>The path through PgBouncer to the database <paramref name="direct"/> names (same user, no reset on close).</summary>
    public string Pooled(string direct) => new NpgsqlConnectionStringBuilder(direct)
    {
        Host = "127.0.0.1", Port = _port,
        // Npgsql's docs for PgBouncer: its DISCARD ALL would run on whichever server connection the next transaction gets.
        NoResetOnClose = true,
    }.ConnectionString;

    public async ValueTask InitializeAsync()
    {
        if (!File.Exists(Binary)) throw new InvalidOperationException($"{Binary} is missing: apt-get install pgbouncer (.ci/run does).");
        var server = new NpgsqlConnectionStringBuilder(TestEnvironment.Current.Postgres.ConnectionString);
        var host = server.Host == "localhost" ? "127.0.0.1" : server.Host;
        Directory.CreateDirectory(_dir);
        _port = PostgresFixture.FreePort();
        var password = string.IsNullOrEmpty(server.Password) ? "" : $" password={server.Password}";
        // auth_type = any: clients are not checked (loopback, test only) and every server login is the configured user.
        await File.WriteAllTextAsync(Path.Combine(_dir, "pgbouncer.ini"), $"""
            [databases]
            * = host={host} port={server.Port} user={server.Username}{password}

            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = {_port}
            unix_socket_dir =
            auth_type = any
            pool_mode = transaction
            max_client_conn = 1000
            default_pool_size = 20
            ignore_startup_parameters = extra_float_digits
            logfile = {_dir}/pgbouncer.log
            """);
        var start = new ProcessStartInfo(IsRoot ? "runuser" : Binary) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (IsRoot)
        {
            await RunAsync("chown", "-R", "postgres:postgres", _dir);
            foreach (var a in (string[])["-u", "postgres", "--", Binary]) start.ArgumentList.Add(a);
        }
        start.ArgumentList.Add(Path.Combine(_dir, "pgbouncer.ini"));
        _process = Process.Start(start)!;
        _ = _process.StandardOutput.ReadToEndAsync();
        _ = _process.StandardError.ReadToEndAsync();
        try
        {
            await Eventually.TrueAsync(async () => _process.HasExited || await AcceptsAsync(), TimeSpan.FromSeconds(20), "PgBouncer listening");
        }
        catch (TimeoutException) { }
        if (_process.HasExited || !await AcceptsAsync())
            throw new InvalidOperationException($"PgBouncer did not start: {Log()}");
    }

    /// <summary>PgBouncer's own log, for a failing test's message.</summary>
    public string Log() => File.Exists(Path.Combine(_dir, "pgbouncer.log")) ? File.ReadAllText(Path.Combine(_dir, "pgbouncer.log")) : "(no log)";

    private async Task<bool> AcceptsAsync()
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync("127.0.0.1", _port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process?.Dispose();
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private static bool IsRoot => Environment.UserName == "root";

    private static async Task RunAsync(string file, params string[] args)
    {
        using var process = Process.Start(file, args);
        await process.WaitForExitAsync();
    }
}
