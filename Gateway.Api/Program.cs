using Gateway.Api;
using Gateway.Api.Auth;
using Gateway.Api.Endpoints;
using Gateway.Api.Endpoints.Anthropic;
using Gateway.Api.Endpoints.Responses;
using Gateway.Api.Endpoints.Admin;
using Gateway.Api.Errors;
using Gateway.Core;
using Gateway.Core.Admin;
using Gateway.Api.Telemetry;
using Gateway.Core.Limits;
using Gateway.Core.Persistence;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

if (args is ["healthcheck", ..])
{
    // `Gateway.Api healthcheck`: for container health checks in images that have no curl.
    return await HealthProbe.RunAsync(Environment.GetEnvironmentVariable("ASPNETCORE_URLS"));
}

var builder = WebApplication.CreateBuilder(args);

builder.Services.AddGatewayProxy();
builder.Services.AddGatewayHealthChecks();
builder.AddGatewayTelemetry();
// The admin API's JSON: source-generated contracts only, no reflection, so a type missing from them fails the tests as it
// would fail the Native AOT build.
builder.Services.ConfigureHttpJsonOptions(o => AdminJson.Configure(o.SerializerOptions, reflection: false,
    Gateway.Api.Endpoints.Admin.AdminApiJson.Default, AdminJsonContext.Default));
// Ours first, so framework-made errors (unknown route, bad admin JSON, crashes) leave in OpenAI's shape.
builder.Services.AddSingleton<IProblemDetailsWriter, OpenAIErrorWriter>();
builder.Services.AddProblemDetails();
// Bad admin JSON is a 400 in every environment, never an exception.
builder.Services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = false);
builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
// Header sizes and slow clients (slow-loris): Kestrel enforces them, from Gateway:Server.
builder.Services.AddOptions<ServerLimitsOptions>().BindConfiguration(ServerLimitsOptions.SectionName).ValidateAnnotations<ServerLimitsOptions, ServerLimitsOptionsValidator>().ValidateOnStart();
builder.Services.AddOptions<KestrelServerOptions>().Configure<IOptions<ServerLimitsOptions>>((kestrel, limits) => limits.Value.ApplyTo(kestrel.Limits));
// Failed admin API authentications per client address (Gateway:AdminAuthFailuresPerAddress within the window), in memory.
builder.Services.AddSingleton(sp =>
{
    var gateway = sp.GetRequiredService<IOptions<GatewayOptions>>().Value;
    return new FailedAuthThrottle(gateway.AdminAuthFailuresPerAddress, TimeSpan.FromSeconds(gateway.AdminAuthFailureWindowSeconds));
});
// SIGTERM: in-flight requests get Gateway:ShutdownDrainSeconds to finish, then the usage writer flushes.
builder.Services.AddOptions<HostOptions>().Configure<IOptions<GatewayOptions>>((host, gateway) =>
    host.ShutdownTimeout = TimeSpan.FromSeconds(gateway.Value.ShutdownDrainSeconds));

var app = builder.Build();

if (args is ["migrate", ..])
{
    // `Gateway.Api migrate`: apply migrations and exit, e.g. as a deploy step before the new version starts.
    await app.Services.GetRequiredService<Migrator>().MigrateAsync(CancellationToken.None);
    return 0;
}

RuntimeSettingsLog.LogGcSettings(app.Logger);

// The client's address is the connection's, unless it came through a proxy of Gateway:TrustedProxies (X-Forwarded-For).
var forwarded = new ForwardedHeadersOptions { ForwardedHeaders = ForwardedHeaders.XForwardedFor };
if (TrustedProxies.ReplaceWith(app.Services.GetRequiredService<IOptions<GatewayOptions>>().Value.TrustedProxies, forwarded.KnownProxies, forwarded.KnownIPNetworks))
    app.UseForwardedHeaders(forwarded);
app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseManagementPort();
app.UseMasterKey();
app.MapHealth();
app.MapPrometheusScrapingEndpoint("/metrics").ManagementOnly();
app.MapOpenAI();
app.MapAnthropic();
app.MapResponses();
app.MapAdmin();

await app.RunAsync();
return 0;

/// <summary>The entry point, visible to WebApplicationFactory in tests.</summary>
public partial class Program;
