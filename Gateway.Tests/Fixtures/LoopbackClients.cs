using System.Net;
using System.Net.Sockets;

namespace Gateway.Tests.Fixtures;

/// <summary>
/// HTTP clients whose connections leave from a chosen loopback address (Linux routes all of 127.0.0.0/8 to the loopback
/// interface), so one test can be several clients as a server sees them: an attacker on 127.0.0.2, an admin on 127.0.0.1.
/// </summary>
public static class LoopbackClients
{
    /// <summary>A client from <paramref name="source"/> (e.g. <c>127.0.0.2</c>); redirects are not followed, cookies are kept.</summary>
    public static HttpClient From(string source, Uri baseAddress)
    {
        var from = IPAddress.Parse(source);
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            CookieContainer = new CookieContainer(),
            ConnectCallback = async (context, ct) =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    socket.Bind(new IPEndPoint(from, 0));
                    await socket.ConnectAsync(context.DnsEndPoint, ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return new HttpClient(handler) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
    }
}
