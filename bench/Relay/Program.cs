// The benchmark's floor: a reverse proxy with no gateway in it (YARP's forwarder on Kestrel and SocketsHttpHandler, the stacks
// the gateway is built on, with the same runtime settings). It forwards every request as it is, by the port it came in on:
// RELAY_ROUTES is "listen-port=upstream-base-url,..." (e.g. "18095=http://127.0.0.1:18091"). No auth, no parsing, no routing
// by model, no metering, no failover: what a row through it costs is what any gateway on these stacks pays before its own work.
using System.Globalization;
using System.Net;
using Yarp.ReverseProxy.Forwarder;

var routes = (Environment.GetEnvironmentVariable("RELAY_ROUTES") ?? "")
    .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
    .Select(r => r.Split('=', 2))
    .ToDictionary(r => int.Parse(r[0], CultureInfo.InvariantCulture), r => r[1]);
if (routes.Count == 0)
{
    Console.Error.WriteLine("RELAY_ROUTES is empty: give listen-port=upstream-base-url pairs, comma-separated");
    return 2;
}

// Its own folder as content root and no file watched (see bench/FakeUpstream: a watcher on bench/out costs CPU on the host measured).
var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.Configuration.Sources.Clear();
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(kestrel =>
{
    foreach (var port in routes.Keys) kestrel.Listen(IPAddress.Loopback, port);
});
builder.Services.AddHttpForwarder();
var app = builder.Build();

// YARP's documented direct-forwarding setup: one invoker for every request, no proxy, no redirects, no cookies, no decompression.
var client = new HttpMessageInvoker(new SocketsHttpHandler
{
    UseProxy = false,
    AllowAutoRedirect = false,
    AutomaticDecompression = DecompressionMethods.None,
    UseCookies = false,
    ConnectTimeout = TimeSpan.FromSeconds(15),
});
var forwarder = app.Services.GetRequiredService<IHttpForwarder>();
// The forwarder answers its own errors (502, or 504 on its 100 s activity timeout) when the response has not started.
app.Map("/{**path}", async http =>
    await forwarder.SendAsync(http, routes[http.Connection.LocalPort], client, ForwarderRequestConfig.Empty, HttpTransformer.Default));
app.Run();
return 0;
