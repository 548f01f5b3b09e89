using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Gateway.Tests.Fixtures;

/// <summary>
/// Holds the app's start until WebApplicationFactory has set the address it binds (<c>UseKestrel(0)</c>).
/// </summary>
/// <remarks>
/// The factory sets that address on the test's thread after the app's <c>Main</c> has built its host, while <c>Main</c>
/// goes on to <c>app.Run()</c> on its own thread: it clears the server's addresses, adds its own and sets
/// <c>PreferHostingUrls</c>, last. A hosted service that adds an address, or a server that starts, before that races it (a
/// second listener was once wiped out by the factory's clear). As the first hosted service, this one waits for the flag.
/// </remarks>
internal sealed class FactoryAddressGate(IServer server) : IHostedService
{
    public static void AddFirst(IServiceCollection services) =>
        services.Insert(0, ServiceDescriptor.Singleton<IHostedService, FactoryAddressGate>());

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var addresses = server.Features.Get<IServerAddressesFeature>()!;
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(TimeSpan.FromSeconds(60));
        while (!addresses.PreferHostingUrls) // set by the factory's thread; each await below reads it afresh
            await Task.Delay(TimeSpan.FromMilliseconds(2), bound.Token);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
