using System.Text.Json;
using Gateway.Api.Auth;
using Gateway.Core.Seeding;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;

namespace Gateway.Api.Endpoints;

/// <summary>
/// <c>/health/live</c> (the process answers) and <c>/health/ready</c> (migrated, caches loaded, database reachable) on every
/// port; <c>/health/upstreams</c> (this instance's view of its providers) only on the management port when one is set.
/// </summary>
internal static class HealthEndpoints
{
    private const string Ready = "ready";
    private const string Upstreams = "upstreams";

    public static IServiceCollection AddGatewayHealthChecks(this IServiceCollection services)
    {
        services.AddHealthChecks()
            .AddCheck<StartupCheck>("startup", tags: [Ready])
            .AddCheck<DatabaseCheck>("database", tags: [Ready])
            .AddCheck<MeteringCheck>("metering", tags: [Ready])
            .AddCheck<RedisCheck>("redis", tags: [Ready])
            .AddCheck<UpstreamsCheck>("upstreams", tags: [Upstreams]);
        return services;
    }

    public static IEndpointRouteBuilder MapHealth(this IEndpointRouteBuilder app)
    {
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = WriteAsync });
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains(Ready), ResponseWriter = WriteAsync });
        app.MapHealthChecks("/health/upstreams", new HealthCheckOptions { Predicate = c => c.Tags.Contains(Upstreams), ResponseWriter = WriteAsync })
            .ManagementOnly();
        return app;
    }

    private static async Task WriteAsync(HttpContext http, HealthReport report)
    {
        http.Response.ContentType = "application/json";
        // Written by hand: a check's data holds strings and numbers of any type, which no source-generated contract lists.
        await using var json = new Utf8JsonWriter(http.Response.Body);
        json.WriteStartObject();
        json.WriteString("status", report.Status.ToString());
        json.WriteStartObject("checks");
        foreach (var (name, entry) in report.Entries)
        {
            json.WriteStartObject(name);
            json.WriteString("status", entry.Status.ToString());
            json.WriteString("description", entry.Description);
            if (entry.Data.Count == 0) json.WriteNull("data");
            else
            {
                json.WriteStartObject("data");
                foreach (var (key, value) in entry.Data)
                {
                    switch (value)
                    {
                        case int i: json.WriteNumber(key, i); break;
                        case long l: json.WriteNumber(key, l); break;
                        case double d: json.WriteNumber(key, d); break;
                        case bool b: json.WriteBoolean(key, b); break;
                        case null: json.WriteNull(key); break;
                        default: json.WriteString(key, Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture)); break;
                    }
                }
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        json.WriteEndObject();
        json.WriteEndObject();
        await json.FlushAsync(http.RequestAborted);
    }

    private sealed class StartupCheck(GatewayStartup startup) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(startup.IsReady
                ? HealthCheckResult.Healthy("migrations applied, keys and models loaded")
                : HealthCheckResult.Unhealthy("starting"));
    }

    /// <summary>This instance's view of its providers: circuit state per provider; Degraded while any is open (in its break) or cooling down.</summary>
    private sealed class UpstreamsCheck(Gateway.Core.Failover.ProviderHealth health) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            var states = health.States();
            var data = states.ToDictionary(s => s.Key, s => (object)s.Value);
            // Half-open: the break is over and the next call probes the provider; not down until that probe fails.
            var down = states.Where(s => s.Value is not ("Closed" or "HalfOpen")).Select(s => s.Key).ToList();
            return Task.FromResult(down.Count == 0
                ? HealthCheckResult.Healthy("every provider called so far is available", data)
                : HealthCheckResult.Degraded($"unavailable: {string.Join(", ", down)}", data: data));
        }
    }

    private sealed class DatabaseCheck(NpgsqlDataSource db) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            // Answer within 2 s whatever the connect timeout, so probes (Docker: 5 s) get an answer.
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(2));
            try
            {
                await using var command = db.CreateCommand("SELECT 1");
                await command.ExecuteScalarAsync(timeout.Token);
                return HealthCheckResult.Healthy("reachable");
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException || ex is OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                // Degraded, not down: known keys are cached and usage records wait in the journal.
                return HealthCheckResult.Degraded("unreachable");
            }
        }
    }

    /// <summary>
    /// How rate limits are enforced: <c>shared</c> (Redis answers: exact across instances), <c>off</c> (no Redis: a share per live
    /// instance) or <c>degraded</c> (Redis set but unreachable: local shares until it answers). Degraded, never unhealthy: the
    /// instance serves every request either way, so it stays in rotation.
    /// </summary>
    private sealed class RedisCheck(Gateway.Core.Redis.RedisLink redis, Gateway.Core.Limits.LiveInstances live) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            var data = new Dictionary<string, object> { ["mode"] = redis.Mode, ["live_instances"] = live.Count };
            return Task.FromResult(redis.Mode switch
            {
                "shared" => HealthCheckResult.Healthy("rate limits shared through Redis", data),
                "off" => HealthCheckResult.Healthy("no Redis: rate limits are a share per live instance", data),
                _ => HealthCheckResult.Degraded("Redis unreachable: rate limits are a local share per live instance until it answers", data: data),
            });
        }
    }

    /// <summary>Degraded while usage records wait in the journal for PostgreSQL (files to replay), with the spool's size.</summary>
    private sealed class MeteringCheck(Gateway.Core.Metering.UsageJournal journal) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            var data = new Dictionary<string, object> { ["journal_bytes"] = journal.Bytes, ["files_to_replay"] = journal.SegmentsToReplay };
            return Task.FromResult(journal.SegmentsToReplay > 0
                ? HealthCheckResult.Degraded("usage records spooled in the journal, waiting for the database", data: data)
                : HealthCheckResult.Healthy(journal.Enabled ? "journal on" : "journal off", data));
        }
    }
}
