using System.Text.Json;
using FluentValidation;
using Gateway.Core.Admin;
using Gateway.Core.Catalog;
using Gateway.Core.Keys;
using Gateway.Core.Persistence;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Gateway.Core.Seeding;

/// <summary>
/// Runs before the web server listens: migrations, the seed file, the demo key, and the first load
/// of the key, model and admin token snapshots. Readiness is true once it finished.
/// </summary>
public sealed partial class GatewayStartup(
    IOptions<GatewayOptions> options, IHostEnvironment environment, Migrator migrator, CatalogStore catalogStore, CatalogReferences references,
    DemoKeyIssuer demoKey, KeyCache keys, ModelCatalog catalog, ProviderRequestValidator providerRules, Routing.RuleStore ruleStore,
    Routing.RuleBook rules, Budgets.BudgetLedger ledger, Budgets.TagBudgets tagBudgets, AdminTokens adminTokens, ILogger<GatewayStartup> logger)
    : IHostedService
{
    public bool IsReady { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        if (settings.MigrateOnStart) await migrator.MigrateAsync(cancellationToken);
        await ApplySeedFileAsync(settings.SeedFile, cancellationToken);
        if (settings.SeedDemoKey && await demoKey.IssueOnceAsync(cancellationToken) is { } created)
        {
            // Printed to the console once, on purpose, and never logged: keys are shown only at creation.
            await Console.Out.WriteLineAsync($"Demo key: {created.Key}");
            await Console.Out.WriteLineAsync($"  (development only: {DemoKeyIssuer.Describe(created)})");
            await Console.Out.FlushAsync(cancellationToken);
            if (settings.DemoKeyFile is { Length: > 0 } file) await WriteOwnerOnlyAsync(file, created.Key, cancellationToken);
        }
        await keys.ReloadAsync(cancellationToken);
        await catalog.ReloadAsync(cancellationToken);
        await rules.ReloadAsync(cancellationToken);
        await tagBudgets.ReloadAsync(cancellationToken);
        await adminTokens.ReloadAsync(cancellationToken);
        IsReady = true;
        Log.Ready(logger, keys.Count, catalog.Models.Count);
    }

    // Created with mode 600 on Unix before the key is written, like run.sh's data/master-key.
    private static async Task WriteOwnerOnlyAsync(string path, string text, CancellationToken ct)
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        await using var stream = new FileStream(path, options);
        await stream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(text), ct);
    }

    private async Task ApplySeedFileAsync(string path, CancellationToken ct)
    {
        var full = Path.IsPathRooted(path) ? path : Path.Combine(environment.ContentRootPath, path);
        if (!File.Exists(full)) return;
        await using var stream = File.OpenRead(full);
        var seed = await JsonSerializer.DeserializeAsync(stream, AdminJson.Info<SeedFile>(), ct)
                   ?? throw new InvalidOperationException($"Seed file {full} is empty.");
        var modelRules = new ModelRequestValidator();
        foreach (var p in seed.Providers ?? [])
        {
            providerRules.ValidateAndThrow(p);
            if (p.Secret is not null)
                throw new InvalidOperationException($"Seed file: provider '{p.Name}' has a literal 'secret'; use 'secret_ref' (env:NAME or file:/path).");
        }
        foreach (var m in seed.Models ?? []) modelRules.ValidateAndThrow(m);
        var routeRules = new Routing.RoutingRuleValidator();
        foreach (var r in seed.Routes ?? []) routeRules.ValidateAndThrow(r);
        // Names the file refers to must exist in the database or in the file itself (a model may fall back to one defined below it).
        var seedProviders = (seed.Providers ?? []).Select(p => p.Name!).ToHashSet(StringComparer.Ordinal);
        var seedModels = (seed.Models ?? []).Select(m => m.Alias!).ToHashSet(StringComparer.Ordinal);
        foreach (var m in seed.Models ?? [])
        {
            if (await references.CheckModelAsync(m.Alias!, m, ct, seedModels, seedProviders) is { } missing)
                throw new InvalidOperationException($"Seed file {full}: model '{m.Alias}': {missing.Message}");
        }
        foreach (var r in seed.Routes ?? [])
        {
            if (await references.CheckRuleAsync(r, ct, seedModels) is { } missing)
                throw new InvalidOperationException($"Seed file {full}: route '{r.Name}': {missing.Message}");
        }
        await catalogStore.ApplySeedAsync(seed.Providers ?? [], seed.Models ?? [], ct);
        await ruleStore.ApplySeedAsync(seed.Routes ?? [], ct);
        Log.Seeded(logger, full, seed.Providers?.Count ?? 0, seed.Models?.Count ?? 0);
    }

    /// <summary>
    /// Runs after the web server drained and the usage writer flushed: unused budget leases go back so
    /// other instances can lease them. If the database is unreachable, other instances give back their unclaimed part once
    /// this instance's heartbeat has stood still for the reclaim bound (<see cref="Budgets.LeaseHeartbeat"/>).
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        try
        {
            await ledger.ReleaseAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or OperationCanceledException or TimeoutException or ObjectDisposedException)
        {
            Log.LeasesKept(logger, ex.Message);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Seed file {Path} applied: {Providers} providers, {Models} models")]
        public static partial void Seeded(ILogger logger, string path, int providers, int models);

        [LoggerMessage(EventId = 1004, Level = LogLevel.Warning, Message = "Unused budget leases could not be returned ({Error}); other instances reclaim their unclaimed part once this instance's heartbeat has stood still for Gateway:Budgets:LeaseReclaimSeconds")]
        public static partial void LeasesKept(ILogger logger, string error);

        [LoggerMessage(EventId = 1003, Level = LogLevel.Information, Message = "Gateway ready: {Keys} keys, {Models} models")]
        public static partial void Ready(ILogger logger, int keys, int models);
    }
}
