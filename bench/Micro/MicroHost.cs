using Gateway.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Micro;

/// <summary>
/// A gateway instance's services, registered by the same <see cref="GatewayCoreServiceCollectionExtensions.AddGatewayProxy"/>
/// as Gateway.Api and configured the same way (environment variables: <c>ConnectionStrings__Gateway</c>, <c>Gateway__…</c>).
/// The host is built, not run: each tool starts the hosted services it measures itself.
/// </summary>
internal static class MicroHost
{
    public static IHost Build(IReadOnlyDictionary<string, string?> settings)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(settings);
        // The gateway's warnings still show; its start-up chatter would bury the results.
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddGatewayProxy();
        return builder.Build();
    }

    /// <summary>A folder of its own under the system's temporary folder, for state the run must not share or keep.</summary>
    public static string ScratchDirectory(string name)
    {
        var path = Path.Combine(Path.GetTempPath(), $"micro-{name}-{Environment.ProcessId}");
        if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
        Directory.CreateDirectory(path);
        return path;
    }
}
