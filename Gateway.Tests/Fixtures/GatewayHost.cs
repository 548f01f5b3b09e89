using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Catalog;
using Gateway.Core.Errors;
using Gateway.Core.Keys;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Fixtures;

/// <summary>The real API (Program) on a real loopback port, against the test database.</summary>
public sealed class GatewayHost : WebApplicationFactory<Program>
{
    public const string MasterKey = "test-master-key-0123456789";

    private readonly string _connectionString;
    private readonly Dictionary<string, string?> _settings;
    private readonly TimeProvider? _time;
    private readonly Action<IServiceCollection>? _services;
    private readonly string _keysDir = Path.Combine(Path.GetTempPath(), "gw-dp-" + Guid.NewGuid().ToString("N")[..12]);
    private static int _started;
    private readonly string _name = "api-" + Interlocked.Increment(ref _started);

    /// <param name="time">The clock the gateway reads (the system clock when null).</param>
    /// <param name="services">Registrations added after the app's own (e.g. a logger provider that captures logs).</param>
    public GatewayHost(string connectionString, Dictionary<string, string?>? settings = null, TimeProvider? time = null,
        Action<IServiceCollection>? services = null)
    {
        _connectionString = connectionString;
        _settings = settings ?? [];
        _time = time;
        _services = services;
        UseKestrel(0);
        var logged = HostLog.Position;
        try
        {
            StartServer();
        }
        catch (Exception ex)
        {
            // A fixture that fails here fails every test of its class: say why in the exception itself.
            var (lines, _) = HostLog.Since(logged, 100);
            throw new InvalidOperationException($"Gateway host {_name} did not start. Its log:{Environment.NewLine}{string.Join(Environment.NewLine, lines)}", ex);
        }
    }

    public Uri BaseAddress => ClientOptions.BaseAddress;

    /// <summary>What this host logged (at the configured levels; tests that inspect logs set <c>Logging:LogLevel:Default</c>).</summary>
    public CapturedLogs Logs { get; } = new();

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("ConnectionStrings:Gateway", _connectionString);
        builder.UseSetting("Gateway:MasterKey", MasterKey);
        builder.UseSetting("Gateway:SeedFile", "");
        builder.UseSetting("Gateway:DataProtectionKeysDirectory", _keysDir);
        builder.UseSetting("Gateway:Metering:JournalDirectory", Path.Combine(_keysDir, "journal"));
        builder.UseSetting("Gateway:Upstream:TimeoutSeconds", "3");
        builder.UseSetting("Logging:LogLevel:Default", "Warning");
        foreach (var (key, value) in _settings) builder.UseSetting(key, value);
        if (_time is not null) builder.ConfigureTestServices(services => services.AddSingleton(_time));
        builder.ConfigureLogging(logging =>
        {
            HostLog.RouteHere(logging, _name); // not the console: a test's output shows it when the test fails
            logging.AddProvider(Logs);
        });
        if (_services is not null) builder.ConfigureTestServices(_services);
        builder.ConfigureTestServices(FactoryAddressGate.AddFirst); // after the test's own: first of all hosted services
    }

    public HttpClient Client(string? bearer = null)
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        if (bearer is not null) client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        return client;
    }

    public HttpClient Admin() => Client(MasterKey);

    /// <summary>Issues a key through the admin API; returns the key and its id.</summary>
    public async Task<(string Key, Guid Id)> CreateKeyAsync(string? name = null, string[]? allowedModels = null, DateTimeOffset? expiresAt = null,
        int? rpmLimit = null, int? tpmLimit = null, string? injectionFilter = null, decimal? hardCapUsd = null)
    {
        using var admin = Admin();
        var response = await admin.PostAsJsonAsync("/admin/keys", new JsonObject
        {
            ["name"] = name ?? "test-" + Guid.NewGuid().ToString("N")[..8],
            ["allowed_models"] = allowedModels is null ? null : new JsonArray([.. allowedModels.Select(m => JsonValue.Create(m))]),
            ["expires_at"] = expiresAt?.ToString("O"),
            ["rpm_limit"] = rpmLimit,
            ["tpm_limit"] = tpmLimit,
            ["injection_filter"] = injectionFilter,
            ["hard_cap_usd"] = hardCapUsd,
        });
        response.EnsureSuccessStatusCode();
        var body = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        var key = body["key"]!.GetValue<string>();
        var id = body["id"]!.GetValue<Guid>();
        await WaitForKeyAsync(key);
        return (key, id);
    }

    /// <summary>
    /// Creates a key from an admin body written out (fields <see cref="CreateKeyAsync"/> has no parameter for, or spellings
    /// under test), checks it was created, and waits until this host's key cache has it.
    /// </summary>
    public async Task<CreatedKey> CreateKeyFromJsonAsync(string body)
    {
        using var admin = Admin();
        using var response = await admin.PostAsync("/admin/keys", TestJson.Json(body));
        var created = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Created, created.ToJsonString());
        var key = created["key"]!.GetValue<string>();
        await WaitForKeyAsync(key);
        return new CreatedKey(key, created["id"]!.GetValue<Guid>(), created);
    }

    /// <summary>Waits until this host's key cache has <paramref name="key"/> (the key's NOTIFY reached it).</summary>
    public Task WaitForKeyAsync(string key) =>
        WaitUntilAsync(() => Services.GetRequiredService<KeyCache>().Authenticate(key).Failure != GatewayError.InvalidKey);

    /// <summary>Adds a provider pointing at <paramref name="baseUrl"/> and a model alias for it, then waits until this host serves it.</summary>
    /// <param name="everyHost">
    /// The provider's secret as an <c>env:</c> reference, which every host resolves, for tests with a second instance (a literal
    /// secret is encrypted with this host's key ring, which other hosts cannot read).
    /// </param>
    public async Task<string> AddModelAsync(string baseUrl, string upstreamModel, string protocol = "openai",
        decimal inputPrice = 2.5m, decimal outputPrice = 10m, decimal cachedPrice = 1.25m, JsonObject? settings = null, int? maxOutputTokens = null,
        string secret = "sk-fake-upstream-secret", string[]? fallbacks = null, int? ttftTimeoutMs = null, int? timeoutMs = null, bool everyHost = false,
        decimal? cacheWritePrice = null, decimal? cacheWrite1hPrice = null)
    {
        var provider = "fake-" + Guid.NewGuid().ToString("N")[..10];
        var alias = $"{provider}/{upstreamModel}";
        var body = new JsonObject { ["name"] = provider, ["protocol"] = protocol, ["base_url"] = baseUrl, ["settings"] = settings };
        if (everyHost)
        {
            var variable = "GATEWAY_SECRET_" + provider.ToUpperInvariant().Replace('-', '_');
            Environment.SetEnvironmentVariable(variable, secret);
            body["secret_ref"] = "env:" + variable;
        }
        else
        {
            body["secret"] = secret;
        }
        using var admin = Admin();
        (await admin.PostAsJsonAsync("/admin/providers", body)).EnsureSuccessStatusCode();
        (await admin.PostAsJsonAsync("/admin/models", new JsonObject
        {
            ["alias"] = alias, ["provider"] = provider, ["upstream_model"] = upstreamModel,
            ["input_price_per_mtok"] = inputPrice, ["output_price_per_mtok"] = outputPrice, ["cached_input_price_per_mtok"] = cachedPrice,
            ["cache_write_price_per_mtok"] = cacheWritePrice, ["cache_write_1h_price_per_mtok"] = cacheWrite1hPrice,
            ["max_output_tokens"] = maxOutputTokens, ["ttft_timeout_ms"] = ttftTimeoutMs, ["timeout_ms"] = timeoutMs,
            ["fallbacks"] = fallbacks is null ? null : new JsonArray([.. fallbacks.Select(f => JsonValue.Create(f))]),
        })).EnsureSuccessStatusCode();
        await WaitUntilAsync(() => Services.GetRequiredService<ModelCatalog>().Find(alias) is not null);
        return alias;
    }

    /// <summary>
    /// For a gateway in another process, whose caches this test cannot read: waits until <paramref name="client"/>'s key is
    /// accepted and <c>/v1/models</c> lists every one of <paramref name="models"/> (keys and models reach a host by NOTIFY).
    /// </summary>
    public static Task WaitUntilServedAsync(HttpClient client, params string[] models) => Eventually.TrueAsync(async () =>
    {
        using var response = await client.GetAsync("/v1/models");
        if (response.StatusCode != System.Net.HttpStatusCode.OK) return false;
        var listed = await response.Content.ReadAsStringAsync();
        return models.All(m => listed.Contains($"\"{m}\"", StringComparison.Ordinal));
    }, what: $"The key and the models {string.Join(", ", models)} served");

    /// <summary>Polls until <paramref name="condition"/> holds (e.g. a NOTIFY reached this instance); the default bound is <see cref="Eventually.Bound"/>.</summary>
    public static Task WaitUntilAsync(Func<bool> condition, int timeoutMs = 30_000) => Eventually.TrueAsync(condition, TimeSpan.FromMilliseconds(timeoutMs));

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        if (Directory.Exists(_keysDir)) Directory.Delete(_keysDir, recursive: true);
    }
}
