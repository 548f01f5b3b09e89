using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Fixtures;

/// <summary>What every fake provider shares: a Kestrel app on 127.0.0.1:0 and the requests it received.</summary>
public abstract class FakeServer : IAsyncDisposable
{
    private WebApplication? _app;

    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    /// <summary>The provider's base URL (e.g. http://127.0.0.1:port/v1).</summary>
    public string BaseUrl { get; private set; } = "";

    /// <summary>The request whose body contains <paramref name="marker"/> (tests tag their requests).</summary>
    public RecordedRequest? Find(string marker) => Requests.FirstOrDefault(r => r.Body.Contains(marker, StringComparison.Ordinal));

    /// <summary>Maps the provider's routes.</summary>
    protected abstract void Map(WebApplication app);

    protected static async Task<T> StartAsync<T>(T fake, string basePath) where T : FakeServer
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        fake.Map(app);
        await app.StartAsync();
        fake._app = app;
        fake.BaseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + basePath;
        return fake;
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null) await _app.DisposeAsync();
        GC.SuppressFinalize(this);
    }
}
