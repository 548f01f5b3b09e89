using Dapper;
using Gateway.Core.Admin;
using Gateway.Core.Catalog;
using Gateway.Core.Chat;
using Gateway.Core.Failover;
using Gateway.Core.Keys;
using Gateway.Core.Metering;
using Gateway.Core.Persistence;
using Gateway.Core.Providers;
using Gateway.Core.Providers.Anthropic;
using Gateway.Core.Providers.Gemini;
using Gateway.Core.Providers.Mock;
using Gateway.Core.Providers.OpenAI;
using Gateway.Core.Secrets;
using Gateway.Core.Seeding;
using Gateway.Core.Tokens;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.Repositories;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Gateway.Core;

public static class GatewayCoreServiceCollectionExtensions
{
    /// <summary>
    /// What both hosts need, on the <c>ConnectionStrings:Gateway</c> database: options, the stores behind the admin API and app,
    /// audit, reports, the in-memory snapshots of keys, models and rules (kept fresh by <see cref="ChangeListener"/>), the router
    /// and provider adapters for the route tester and connection test, and start-up (migrations, seed file, demo key).
    /// Not the proxy engine: see <see cref="AddGatewayProxy"/>.
    /// </summary>
    public static IServiceCollection AddGatewayData(this IServiceCollection services)
    {
        DefaultTypeMap.MatchNamesWithUnderscores = true;

        services.AddOptions<GatewayOptions>().BindConfiguration(GatewayOptions.SectionName).ValidateAnnotations<GatewayOptions, GatewayOptionsValidator>()
            .Validate(o => TimeZoneInfo.TryFindSystemTimeZoneById(o.BudgetTimeZone, out _), "Gateway:BudgetTimeZone is not a known time zone id.")
            .Validate(o => Limits.TrustedProxies.TryParse(o.TrustedProxies, out _), "Gateway:TrustedProxies holds an entry that is neither an IP address nor a CIDR network.")
            .ValidateOnStart();
        services.AddOptions<UpstreamOptions>().BindConfiguration(UpstreamOptions.SectionName).ValidateAnnotations<UpstreamOptions, UpstreamOptionsValidator>().ValidateOnStart();
        services.AddOptions<FailoverOptions>().BindConfiguration(FailoverOptions.SectionName).ValidateAnnotations<FailoverOptions, FailoverOptionsValidator>().ValidateOnStart();
        services.AddOptions<Responses.ResponsesOptions>().BindConfiguration(Responses.ResponsesOptions.SectionName).ValidateAnnotations<Responses.ResponsesOptions, ResponsesOptionsValidator>().ValidateOnStart();
        services.AddOptions<MeteringOptions>().BindConfiguration(MeteringOptions.SectionName).ValidateAnnotations<MeteringOptions, MeteringOptionsValidator>().ValidateOnStart();
        services.AddOptions<UsageRetentionOptions>().BindConfiguration(UsageRetentionOptions.SectionName).ValidateAnnotations<UsageRetentionOptions, UsageRetentionOptionsValidator>()
            .Validate(o => o.RetentionDays is 0 or >= 2, "Gateway:Usage:RetentionDays must be 0 (keep every row) or at least 2.")
            .ValidateOnStart();
        services.AddOptions<Budgets.BudgetOptions>().BindConfiguration(Budgets.BudgetOptions.SectionName).ValidateAnnotations<Budgets.BudgetOptions, BudgetOptionsValidator>()
            .Validate<IOptions<UpstreamOptions>>((o, upstream) => o.ReclaimAfter(upstream.Value).TotalSeconds >= 3 * o.LeaseHeartbeatSeconds,
                "Gateway:Budgets:LeaseReclaimSeconds must be at least three heartbeats (Gateway:Budgets:LeaseHeartbeatSeconds).")
            .ValidateOnStart();

        // Resolved lazily, so hosts and tests may set the connection string after registration.
        services.AddSingleton(sp => NpgsqlDataSource.Create(sp.GetRequiredService<IConfiguration>().GetConnectionString("Gateway")
            ?? throw new InvalidOperationException("Set ConnectionStrings__Gateway to the PostgreSQL connection string.")));
        services.AddSingleton(sp => new DirectDatabase(sp.GetRequiredService<NpgsqlDataSource>(),
            sp.GetRequiredService<IConfiguration>().GetConnectionString(DirectDatabase.ConnectionStringName)));
        services.AddSingleton(sp => new ReportsDatabase(sp.GetRequiredService<NpgsqlDataSource>(),
            sp.GetRequiredService<IConfiguration>().GetConnectionString(ReportsDatabase.ConnectionStringName)));
        services.TryAddTimeProvider();

        services.AddDataProtection().SetApplicationName("llm-gateway");
        services.AddOptions<KeyManagementOptions>().Configure<IOptions<GatewayOptions>, IHostEnvironment, ILoggerFactory>((o, gateway, env, logs) =>
        {
            var dir = gateway.Value.DataProtectionKeysDirectory;
            o.XmlRepository = new FileSystemXmlRepository(
                new DirectoryInfo(Path.IsPathRooted(dir) ? dir : Path.Combine(env.ContentRootPath, dir)), logs);
        });
        services.AddSingleton<SecretResolver>();
        services.AddSingleton<ProviderRequestValidator>();

        services.AddSingleton<TokenCounter>();
        services.AddSingleton<Validation.ChatRequestParser>();
        services.AddSingleton<Validation.EmbeddingRequestParser>();
        services.AddSingleton<KeyCache>();
        services.AddSingleton<ModelCatalog>();
        services.AddSingleton<KeyStore>();
        services.AddSingleton<CatalogStore>();
        services.AddSingleton<CatalogReferences>();
        services.AddSingleton<Audit.AuditLog>();
        services.AddSingleton<AdminTokens>();
        services.AddSingleton(sp => new Migrator(sp.GetRequiredService<DirectDatabase>(), sp.GetRequiredService<ILogger<Migrator>>()));

        // No HttpClientFactory loggers: their lines are below the levels appsettings.json sets for them, yet each call still
        // opened a log scope, formatted with the upstream's URL, for nothing.
        services.AddHttpClient(OpenAIChatProvider.HttpClientName, c => c.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(OpenAIChatProvider.CreateHandler)
            .RemoveAllLoggers();
        services.AddSingleton<OpenAIChatProvider>();
        services.AddSingleton<MockChatProvider>();
        services.AddSingleton<GeminiChatProvider>();
        services.AddSingleton<IChatProvider>(sp => sp.GetRequiredService<OpenAIChatProvider>());
        services.AddSingleton<IChatProvider>(sp => sp.GetRequiredService<MockChatProvider>());
        services.AddSingleton<IChatProvider>(sp => sp.GetRequiredService<GeminiChatProvider>());
        services.AddSingleton<AnthropicChatProvider>();
        services.AddSingleton<IChatProvider>(sp => sp.GetRequiredService<AnthropicChatProvider>());
        services.AddSingleton<IEmbeddingProvider>(sp => sp.GetRequiredService<OpenAIChatProvider>());
        services.AddSingleton<IEmbeddingProvider>(sp => sp.GetRequiredService<MockChatProvider>());
        services.AddSingleton<IEmbeddingProvider>(sp => sp.GetRequiredService<GeminiChatProvider>());
        services.AddSingleton<Routing.RuleBook>();
        services.AddSingleton<Routing.RuleStore>();
        services.AddSingleton<Routing.ChatRouter>();
        services.AddSingleton<Routing.RouteTester>();
        services.AddSingleton<ConnectionTester>();
        services.AddSingleton<Budgets.BudgetCalendar>();
        services.AddSingleton<Budgets.BudgetLedger>();
        services.AddSingleton<Budgets.TagBudgets>();
        services.AddSingleton<Reports.SpendReports>();
        services.AddSingleton<Reports.SpendDashboard>();

        // Start-up work finishes before the listener starts (hosted services start in registration order).
        services.AddSingleton<DemoKeyIssuer>();
        services.AddSingleton<GatewayStartup>();
        services.AddHostedService(sp => sp.GetRequiredService<GatewayStartup>());
        services.AddHostedService<ChangeListener>();
        return services;
    }

    /// <summary>
    /// The proxy engine on top of <see cref="AddGatewayData"/>: the request pipeline and its steps (rate limits, injection screen,
    /// response cache, budgets, failover over the provider adapters), and metering (journal, channel, writer, lease heartbeat).
    /// </summary>
    public static IServiceCollection AddGatewayProxy(this IServiceCollection services)
    {
        services.AddGatewayData();
        // Optional Redis (ConnectionStrings:Redis): exact rate limits across instances, and the response cache if chosen.
        services.AddSingleton<Redis.RedisLink>();
        services.AddHostedService(sp => sp.GetRequiredService<Redis.RedisLink>());
        services.AddOptions<Caching.CacheOptions>().BindConfiguration(Caching.CacheOptions.SectionName).ValidateAnnotations<Caching.CacheOptions, CacheOptionsValidator>()
            .Validate<Redis.RedisLink>((o, redis) => !o.InRedis || redis.Configured,
                "Gateway:Cache:Store is redis, but no Redis is set (ConnectionStrings:Redis).")
            .ValidateOnStart();
        services.AddSingleton<Limits.LiveInstances>();
        services.AddKeyedSingleton<TimeProvider>(Limits.KeyRateLimiter.ClockKey, (sp, _) => sp.GetRequiredService<TimeProvider>());
        services.AddSingleton<Limits.KeyRateLimiter>();
        services.AddSingleton<Guards.InjectionFilter>();
        services.AddSingleton<Guards.InjectionScreen>();
        services.AddSingleton<Caching.ResponseCache>();
        services.AddSingleton<Budgets.RequestBudget>();
        services.AddSingleton<ProviderHealth>();
        services.AddSingleton<FailoverExecutor>();
        services.AddSingleton<UpstreamCaller>();
        services.AddSingleton<RequestMeters>();
        services.AddSingleton<Logging.BodyLog>();
        services.AddSingleton<Pipeline.ChatPipeline>();
        services.AddSingleton<Responses.ResponseStore>();

        services.AddMetrics();
        services.AddSingleton<GatewayMetrics>();
        services.AddSingleton<UsageJournal>();
        services.AddSingleton<UsageChannel>();
        services.AddSingleton<UsageWriter>();

        // Hosted services stop in reverse, after the web server, so the writer flushes every in-flight request's record.
        // The journal starts before the writer (which replays its files) and stops after the writer's final flush.
        services.AddHostedService(sp => sp.GetRequiredService<UsageJournal>());
        services.AddHostedService(sp => sp.GetRequiredService<UsageWriter>());
        // After the journal (it names the directory an earlier run's leases belong to), before the web server listens.
        services.AddSingleton<Budgets.LeaseHeartbeat>();
        services.AddHostedService(sp => sp.GetRequiredService<Budgets.LeaseHeartbeat>());
        services.AddSingleton<UsageRetention>();
        services.AddHostedService(sp => sp.GetRequiredService<UsageRetention>());
        return services;
    }

    private static void TryAddTimeProvider(this IServiceCollection services)
    {
        if (!services.Any(d => d.ServiceType == typeof(TimeProvider)))
            services.AddSingleton(TimeProvider.System);
    }
}
