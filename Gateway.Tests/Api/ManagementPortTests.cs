using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Gateway.Tests.Api;

/// <summary>With Gateway:ManagementPort, the operators' endpoints (/metrics, /health/upstreams) exist on that port only.</summary>
public sealed class ManagementPortTests(TestEnvironment env)
{
    /// <summary>
    /// Adds a listener before the server starts (as an early hosted service: they start in order, the web server's among
    /// them; the host's <see cref="FactoryAddressGate"/> runs before it). WebApplicationFactory binds only the addresses it
    /// chose (it prefers hosting URLs), so Kestrel's own Listen() or the urls setting would be ignored.
    /// </summary>
    private sealed class SecondListener(IServer server, string address) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            server.Features.Get<IServerAddressesFeature>()!.Addresses.Add(address);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    [Fact]
    public async Task ManagementPortSet_MetricsAndUpstreamHealth_AreNotFoundOnTheApiPort_AndServedOnTheManagementPort()
    {
        var management = PostgresFixture.FreePort();
        await using var host = new GatewayHost(env.Postgres.ConnectionString,
            new() { ["Gateway:ManagementPort"] = management.ToString(CultureInfo.InvariantCulture) },
            services: s => s.Insert(0, ServiceDescriptor.Singleton<IHostedService>(sp =>
                new SecondListener(sp.GetRequiredService<IServer>(), $"http://127.0.0.1:{management}"))));
        var addresses = host.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Select(a => new Uri(a)).ToList();
        Assert.Equal(2, addresses.Count);
        using var onApiPort = new HttpClient { BaseAddress = addresses.Single(a => a.Port != management), Timeout = TimeSpan.FromSeconds(30) };
        using var onManagementPort = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{management}"), Timeout = TimeSpan.FromSeconds(30) };

        foreach (var path in new[] { "/metrics", "/health/upstreams" })
        {
            using var hidden = await onApiPort.GetAsync(path);
            // The Host header is the client's to choose: naming the management port in it changes nothing.
            using var spoofed = new HttpRequestMessage(HttpMethod.Get, path);
            spoofed.Headers.Host = $"127.0.0.1:{management}";
            using var spoofedAnswer = await onApiPort.SendAsync(spoofed, HttpCompletionOption.ResponseContentRead);
            using var served = await onManagementPort.GetAsync(path);

            Assert.Equal(HttpStatusCode.NotFound, hidden.StatusCode);
            Assert.NotNull((await hidden.Content.ReadFromJsonAsync<JsonObject>())!["error"]); // as any unknown path
            Assert.Equal(HttpStatusCode.NotFound, spoofedAnswer.StatusCode);
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        }
        // Probes of load balancers and orchestrators keep working on the API port.
        Assert.Equal(HttpStatusCode.OK, (await onApiPort.GetAsync("/health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await onApiPort.GetAsync("/health/ready")).StatusCode);
        Assert.Contains("# TYPE", await onManagementPort.GetStringAsync("/metrics"), StringComparison.Ordinal);
    }
}
