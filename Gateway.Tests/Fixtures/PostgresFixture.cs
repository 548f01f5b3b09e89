using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using DotNet.Testcontainers.Configurations;
using Npgsql;
using Testcontainers.PostgreSql;

namespace Gateway.Tests.Fixtures;

/// <summary>
/// One PostgreSQL server for the test run, and a fresh database on it: the server named by
/// <c>ConnectionStrings__Gateway</c> if set, else a Testcontainers container where Docker answers,
/// else a throwaway cluster started from the local PostgreSQL binaries (as the postgres user when root).
/// </summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    private PostgreSqlContainer? _container;
    private string? _clusterDir;
    private string? _pgBin;
    private string? _serverConnectionString;
    private string _database = "";

    private readonly bool _ownCluster;
    private string? _serverOptions;

    /// <param name="ownCluster">A private cluster from the local binaries, whatever else is available: for tests that stop and start the server.</param>
    public PostgresFixture(bool ownCluster = false) => _ownCluster = ownCluster;

    public string ConnectionString { get; private set; } = "";

    public async ValueTask InitializeAsync()
    {
        _serverConnectionString = _ownCluster ? null : Environment.GetEnvironmentVariable("ConnectionStrings__Gateway");
        if (_ownCluster)
        {
            _serverConnectionString = await StartLocalClusterAsync();
        }
        else if (string.IsNullOrEmpty(_serverConnectionString))
        {
            if (TestcontainersSettings.OS.DockerEndpointAuthConfig is not null)
            {
                _container = new PostgreSqlBuilder("postgres:17.6-alpine").Build();
                await _container.StartAsync();
                _serverConnectionString = _container.GetConnectionString();
            }
            else
            {
                _serverConnectionString = await StartLocalClusterAsync();
            }
        }

        // A fresh database per run, so no test sees rows of an earlier run.
        _database = "gateway_test_" + Guid.NewGuid().ToString("N")[..12];
        await using (var admin = new NpgsqlConnection(_serverConnectionString))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {_database}", admin);
            await create.ExecuteNonQueryAsync();
        }
        ConnectionString = new NpgsqlConnectionStringBuilder(_serverConnectionString) { Database = _database }.ConnectionString;
    }

    /// <summary>Creates another empty database on the same server (for migration tests).</summary>
    public async Task<string> CreateDatabaseAsync()
    {
        var name = "gateway_extra_" + Guid.NewGuid().ToString("N")[..12];
        await using var admin = new NpgsqlConnection(_serverConnectionString);
        await admin.OpenAsync();
        await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", admin);
        await create.ExecuteNonQueryAsync();
        return new NpgsqlConnectionStringBuilder(_serverConnectionString) { Database = name }.ConnectionString;
    }

    public NpgsqlConnection Open()
    {
        var connection = new NpgsqlConnection(ConnectionString);
        connection.Open();
        return connection;
    }

    private async Task<string> StartLocalClusterAsync()
    {
        _pgBin = Directory.GetDirectories("/usr/lib/postgresql").OrderBy(d => int.Parse(Path.GetFileName(d), System.Globalization.CultureInfo.InvariantCulture))
            .Select(d => Path.Combine(d, "bin")).LastOrDefault(d => File.Exists(Path.Combine(d, "initdb")))
            ?? throw new InvalidOperationException("No Docker and no PostgreSQL binaries in /usr/lib/postgresql: install postgresql.");
        _clusterDir = Path.Combine(Path.GetTempPath(), "gw-pg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(_clusterDir);
        if (IsRoot) await RunAsync("chown", "postgres:postgres", _clusterDir);
        var port = FreePort();
        await RunPgAsync("initdb", "-D", $"{_clusterDir}/data", "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync");
        // A cluster that tests crash on purpose (StopServerAsync) commits synchronously, as a production server does: with
        // synchronous_commit off, commits acknowledged in the last moments before the crash are gone after it, and the
        // gateway, told they were stored, rightly dropped its journal of them. fsync stays off: a killed server process
        // leaves its WAL in the page cache.
        var commit = _ownCluster ? "on" : "off";
        _serverOptions = $"-p {port} -k {_clusterDir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit={commit} -c full_page_writes=off -c max_connections=300";
        await StartServerAsync();
        return $"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres";
    }

    /// <summary>Kills the server the way a crash would (immediate shutdown); only for an own cluster.</summary>
    public Task StopServerAsync() => RunPgAsync("pg_ctl", "-D", $"{_clusterDir}/data", "-m", "immediate", "-w", "stop");

    public Task StartServerAsync() =>
        RunPgAsync("pg_ctl", "-D", $"{_clusterDir}/data", "-l", $"{_clusterDir}/server.log", "-w", "-t", "30", "-o", _serverOptions!, "start");

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        if (_container is not null) await _container.DisposeAsync();
        if (_clusterDir is not null)
        {
            if (File.Exists(Path.Combine(_clusterDir, "data", "postmaster.pid"))) await StopServerAsync();
            Directory.Delete(_clusterDir, recursive: true);
        }
        else if (_serverConnectionString is not null && _container is null)
        {
            await using var admin = new NpgsqlConnection(_serverConnectionString);
            await admin.OpenAsync();
            await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {_database} WITH (FORCE)", admin);
            await drop.ExecuteNonQueryAsync();
        }
    }

    private static bool IsRoot => Environment.UserName == "root";

    private Task RunPgAsync(string tool, params string[] args) =>
        IsRoot ? RunAsync("runuser", ["-u", "postgres", "--", Path.Combine(_pgBin!, tool), .. args])
               : RunAsync(Path.Combine(_pgBin!, tool), args);

    private static async Task RunAsync(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({process.ExitCode}): {await stderr} {await stdout}");
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
