using System.Diagnostics;
using System.Net.Sockets;

namespace Gateway.Tests.Fixtures;

/// <summary>
/// A private <c>redis-server</c> (Debian's package, <c>/usr/bin/redis-server</c>) on a free loopback port, without persistence:
/// a stop loses every key, as a crashed cache would. Only the process this fixture started is ever stopped.
/// </summary>
public sealed class RedisFixture : IAsyncDisposable
{
    public const string Binary = "/usr/bin/redis-server";

    private readonly int _port = PostgresFixture.FreePort();
    private Process? _server;

    /// <summary>The StackExchange.Redis connection string.</summary>
    public string ConnectionString => $"127.0.0.1:{_port}";

    public static async Task<RedisFixture> StartAsync()
    {
        var redis = new RedisFixture();
        await redis.StartServerAsync();
        return redis;
    }

    /// <summary>Starts the server (again) on the same port and waits until it answers PING.</summary>
    public async Task StartServerAsync()
    {
        if (!File.Exists(Binary)) throw new InvalidOperationException($"No {Binary}: install Debian's redis-server package (.ci/run does).");
        var start = new ProcessStartInfo(Binary) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "--port", _port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning" })
            start.ArgumentList.Add(arg);
        _server = Process.Start(start)!;
        _server.OutputDataReceived += (_, _) => { };
        _server.ErrorDataReceived += (_, _) => { };
        _server.BeginOutputReadLine();
        _server.BeginErrorReadLine();
        await Eventually.TrueAsync(PingsAsync, what: "redis-server answering PING");
    }

    /// <summary>Kills the server this fixture started (its PID only) and waits until it has exited.</summary>
    public async Task StopServerAsync()
    {
        if (_server is null) return;
        if (!_server.HasExited) _server.Kill();
        await _server.WaitForExitAsync();
        _server.Dispose();
        _server = null;
    }

    private async Task<bool> PingsAsync()
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync("127.0.0.1", _port);
            var stream = client.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray());
            var buffer = new byte[16];
            var read = await stream.ReadAsync(buffer);
            return System.Text.Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public ValueTask DisposeAsync() => new(StopServerAsync());
}
