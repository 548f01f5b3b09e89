using Gateway.Core.Catalog;
using Gateway.Core.Keys;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Gateway.Core.Persistence;

/// <summary>
/// LISTENs on <c>gateway_changes</c> (sent by triggers on the key, admin token, provider and model tables…) and
/// reloads the matching in-memory snapshot, so every instance learns of an admin's change within a
/// second. After a lost connection it reloads everything, since notifications may have been missed. Listens on
/// <see cref="DirectDatabase"/> (past any pooler); the snapshots reload through the ordinary data source.
/// </summary>
public sealed partial class ChangeListener(DirectDatabase direct, KeyCache keys, ModelCatalog catalog, Routing.RuleBook rules,
    Budgets.TagBudgets tagBudgets, Admin.AdminTokens adminTokens, TimeProvider time,
    ILogger<ChangeListener> logger) : BackgroundService
{
    public const string Channel = "gateway_changes";

    private static readonly TimeSpan PingInterval = TimeSpan.FromSeconds(15);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var delay = TimeSpan.FromMilliseconds(200);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                // LISTEN holds the session: a direct connection when the ordinary one goes through a pooler in transaction mode.
                await using var connection = await direct.DataSource.OpenConnectionAsync(stoppingToken);
                var pending = new HashSet<string>();
                connection.Notification += (_, e) => pending.Add(e.Payload);
                await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", connection))
                    await listen.ExecuteNonQueryAsync(stoppingToken);

                // Changes made before LISTEN took effect would otherwise be missed.
                await keys.ReloadAsync(stoppingToken);
                await catalog.ReloadAsync(stoppingToken);
                await rules.ReloadAsync(stoppingToken);
                await tagBudgets.ReloadAsync(stoppingToken);
                await adminTokens.ReloadAsync(stoppingToken);
                delay = TimeSpan.FromMilliseconds(200);

                while (!stoppingToken.IsCancellationRequested)
                {
                    if (await connection.WaitAsync(PingInterval, stoppingToken))
                    {
                        // Drain a burst of notifications before reloading once per snapshot.
                        while (await connection.WaitAsync(TimeSpan.FromMilliseconds(20), stoppingToken)) { }
                    }
                    else
                    {
                        // Quiet for a while: prove the connection still works, since a silently dropped
                        // one (idle NAT timeout, failover) would otherwise block here for ever.
                        await using var ping = new NpgsqlCommand("SELECT 1", connection);
                        ping.CommandTimeout = 5;
                        await ping.ExecuteScalarAsync(stoppingToken);
                    }
                    if (pending.Remove("api_keys")) await keys.ReloadAsync(stoppingToken);
                    if (pending.Remove("providers") | pending.Remove("models")) await catalog.ReloadAsync(stoppingToken);
                    if (pending.Remove("routing_rules")) await rules.ReloadAsync(stoppingToken);
                    if (pending.Remove("tag_budgets")) await tagBudgets.ReloadAsync(stoppingToken);
                    if (pending.Remove("admin_tokens")) await adminTokens.ReloadAsync(stoppingToken);
                    pending.Clear();
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                // Never let the listener die: without it revocations stop reaching this instance.
                Log.ListenFailed(logger, delay.TotalMilliseconds, ex.Message);
                await Task.Delay(delay, time, stoppingToken).ContinueWith(static _ => { }, TaskScheduler.Default);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1201, Level = LogLevel.Warning, Message = "Change listener lost its connection ({Error}); reconnecting in {DelayMs} ms")]
        public static partial void ListenFailed(ILogger logger, double delayMs, string error);
    }
}
