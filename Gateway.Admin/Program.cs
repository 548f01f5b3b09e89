using System.Security.Claims;
using Gateway.Admin.Account;
using Gateway.Admin.Components;
using Gateway.Admin.Data;
using Gateway.Admin.Reports;
using Gateway.Core;
using Gateway.Core.Limits;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.AspNetCore.Components.Authorization;
using Microsoft.AspNetCore.Components.Server.Circuits;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using MudBlazor.Services;
using Npgsql;

var builder = WebApplication.CreateBuilder(args);
// The add-user command prints one line: no EF Core SQL or start-up logs around the password.
if (args is ["add-user", ..]) builder.Logging.ClearProviders();
// Serve MudBlazor's _content/ files from a build output in any environment (run.sh runs a Release build, not a publish).
builder.WebHost.UseStaticWebAssets();

// Data, reports and audit; not the proxy engine (the admin app meters no requests and keeps no usage journal).
builder.Services.AddGatewayData();
builder.Services.AddOptions<AdminOptions>().BindConfiguration(AdminOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
builder.Services.AddRazorComponents().AddInteractiveServerComponents();
builder.Services.AddMudServices();

builder.Services.AddDbContextFactory<AdminDbContext>((sp, o) => o
    .UseNpgsql(sp.GetRequiredService<NpgsqlDataSource>())
    .UseSnakeCaseNamingConvention()
    .UseQueryTrackingBehavior(QueryTrackingBehavior.NoTracking));
builder.Services.AddCascadingAuthenticationState();
// Open tabs are checked against their user too (a circuit makes no HTTP request for the cookie's check to run on).
builder.Services.AddScoped<AdminSession>();
builder.Services.AddScoped<AuthenticationStateProvider>(sp => sp.GetRequiredService<AdminSession>());
builder.Services.AddScoped<CircuitHandler, RevalidateOnOpen>();
var authentication = builder.Services.AddAuthentication(IdentityConstants.ApplicationScheme);
authentication.AddIdentityCookies();
var oidc = builder.Configuration.GetSection($"{AdminOptions.SectionName}:Oidc").Get<OidcOptions>() ?? new();
if (oidc.Enabled) authentication.AddSingleSignOn(oidc, builder.Configuration.GetValue<bool>($"{AdminOptions.SectionName}:RequireHttps"));
builder.Services.AddAuthorizationBuilder()
    .AddPolicy(SpendExportEndpoints.Policy, p => p.RequireRole(AdminRoles.Admin, AdminRoles.Finance));
builder.Services.AddIdentityCore<AdminUser>(o =>
    {
        o.User.RequireUniqueEmail = true;
        o.Password.RequiredLength = 12;
        o.Password.RequireNonAlphanumeric = false;
        o.Lockout.AllowedForNewUsers = true;
        o.Lockout.DefaultLockoutTimeSpan = TimeSpan.FromMinutes(15);
    })
    .AddRoles<IdentityRole>()
    .AddEntityFrameworkStores<AdminDbContext>()
    .AddSignInManager()
    .AddDefaultTokenProviders();
builder.Services.AddOptions<Microsoft.AspNetCore.Authentication.Cookies.CookieAuthenticationOptions>(IdentityConstants.ApplicationScheme)
    .Configure<Microsoft.Extensions.Options.IOptions<AdminOptions>>((cookie, admin) =>
    {
        cookie.LoginPath = "/account/login";
        cookie.AccessDeniedPath = "/account/denied";
        cookie.Cookie.Name = "gateway.admin";
        cookie.Cookie.HttpOnly = true;
        cookie.Cookie.SameSite = SameSiteMode.Strict;
        cookie.Cookie.SecurePolicy = admin.Value.RequireHttps ? CookieSecurePolicy.Always : CookieSecurePolicy.SameAsRequest;
        cookie.ExpireTimeSpan = TimeSpan.FromHours(8);
        cookie.SlidingExpiration = true;
        // Password and single sign-on sign-ins (and the refresh after one's own password change) note the time for the Users page.
        cookie.Events.OnSignedIn = context => context.Principal?.FindFirstValue(ClaimTypes.NameIdentifier) is { } id
            ? context.HttpContext.RequestServices.GetRequiredService<AdminUsers>().RecordSignInAsync(id, context.HttpContext.RequestAborted)
            : Task.CompletedTask;
    });
// An account locks after Admin:SignInFailuresPerAccount failures in a row; an address is refused after fewer (AdminSignIn).
builder.Services.AddOptions<IdentityOptions>().Configure<Microsoft.Extensions.Options.IOptions<AdminOptions>>((identity, admin) =>
    identity.Lockout.MaxFailedAccessAttempts = admin.Value.SignInFailuresPerAccount);
builder.Services.AddSingleton(sp =>
{
    var admin = sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<AdminOptions>>().Value;
    return new FailedAuthThrottle(admin.SignInFailuresPerAddress, TimeSpan.FromMinutes(admin.SignInFailureWindowMinutes));
});
builder.Services.AddScoped<AdminSignIn>();
// A sign-in cookie is checked against its user (removed, disabled, other role or password: signed out) this long after it was
// issued or last checked; Identity's default is 30 minutes.
builder.Services.AddOptions<SecurityStampValidatorOptions>()
    .Configure<Microsoft.Extensions.Options.IOptions<AdminOptions>>((stamp, admin) => stamp.ValidationInterval = admin.Value.SecurityStampInterval);
builder.Services.AddSingleton<AdminUsers>();
builder.Services.AddHostedService<AdminSeeder>();
builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);

var app = builder.Build();

if (args is ["add-user", var email, var role, ..])
{
    // `Gateway.Admin add-user <email> <Admin|Finance>`: creates a user and prints its password once.
    await using var scope = app.Services.CreateAsyncScope();
    // Maybe before this version's first start: its schema first, as start-up would (unless migrations are a deploy step).
    if (scope.ServiceProvider.GetRequiredService<Microsoft.Extensions.Options.IOptions<GatewayOptions>>().Value.MigrateOnStart)
        await scope.ServiceProvider.GetRequiredService<Gateway.Core.Persistence.Migrator>().MigrateAsync(CancellationToken.None);
    var (password, error) = await scope.ServiceProvider.GetRequiredService<AdminUsers>().CreateAsync(AdminUsers.CommandLineActor, email, role, CancellationToken.None);
    await (error is null ? Console.Out.WriteLineAsync($"Created {role} user {email}; password: {password}")
        : Console.Error.WriteLineAsync(error));
    return error is null ? 0 : 1;
}

// The client's address is the connection's, unless it came through a proxy of Gateway:TrustedProxies (X-Forwarded-For).
var forwarded = new ForwardedHeadersOptions { ForwardedHeaders = ForwardedHeaders.XForwardedFor };
if (TrustedProxies.ReplaceWith(app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<GatewayOptions>>().Value.TrustedProxies,
        forwarded.KnownProxies, forwarded.KnownIPNetworks))
    app.UseForwardedHeaders(forwarded);
// Headers every answer carries, sign-in redirects included (so before authentication, which is then placed explicitly):
// no MIME sniffing, no referrer to other sites, never framed (clickjacking), no <base> or plugin from elsewhere. A
// script-src policy is left out: Blazor writes its import map inline, with per-build contents.
app.Use((http, next) =>
{
    var headers = http.Response.Headers;
    headers.XContentTypeOptions = "nosniff";
    headers["Referrer-Policy"] = "same-origin";
    headers.ContentSecurityPolicy = "frame-ancestors 'none'; base-uri 'self'; object-src 'none'";
    return next(http);
});
if (!app.Environment.IsDevelopment())
{
    app.UseExceptionHandler("/error", createScopeForErrors: true);
    if (app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<AdminOptions>>().Value.RequireHttps) app.UseHsts();
}
app.UseStatusCodePagesWithReExecute("/not-found", createScopeForStatusCodePages: true);
app.UseAuthentication();
app.UseAuthorization();
app.UseAntiforgery();
app.MapStaticAssets();
app.MapAccount();
if (oidc.Enabled) app.MapSingleSignOn();
app.MapSpendExport();
app.MapRazorComponents<App>().AddInteractiveServerRenderMode();

await app.RunAsync();
return 0;
