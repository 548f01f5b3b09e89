using Dapper;
using Gateway.Core;
using Gateway.Core.Budgets;
using Gateway.Core.Persistence;
using Gateway.Core.Reports;
using Gateway.Tests.Fixtures;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Gateway.Tests.Core;

/// <summary>
/// An admin who leaves the spend page cancels its load (the grid's token): the dashboard's query must be cancelled in
/// PostgreSQL, not left running on a pooled connection. Dapper.AOT takes the token from the args object (a member of it, or the
/// object itself for a query without parameters), so each way a query passes it is covered: <see cref="SpendFilterArgs.Ct"/>,
/// an anonymous object's <c>ct</c>, and the token as the args.
/// </summary>
public sealed class SpendDashboardCancellationTests(OwnDatabase database)
    : IClassFixture<OwnDatabase>
{
    // A database of its own (OwnDatabase): the tables locked here would otherwise stall every other test's usage writer and key reads.
    private static readonly DateOnly Day = new(2032, 6, 1);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <param name="call">The dashboard method, and for <c>FilterOptionsAsync</c> which of its three queries is made to wait.</param>
    /// <param name="table">The table the query reads that is locked (the others it reads stay free).</param>
    /// <param name="sql">A fragment of the waiting query's text, to be sure the intended query is the one waiting.</param>
    [Theory]
    [InlineData("Daily", "usage_daily_models", "FROM usage_daily_models d")]            // SpendFilterArgs.Ct
    [InlineData("UsagePage", "usage_events", "FROM usage_events e LEFT JOIN api_keys")] // SpendFilterArgs.Ct, with a page
    [InlineData("FilterOptions/models", "usage_daily_models", "SELECT DISTINCT model")] // new { from, to, ct }
    [InlineData("FilterOptions/teams", "api_keys", "unnest(tags)")]                     // the token is the args object
    public async Task DashboardQuery_CancelledWhileWaitingOnALock_EndsCancelled_AndItsBackendStopsWaiting(string call, string table, string sql)
    {
        // The dashboard's connections carry a name of their own, to find its backend in pg_stat_activity.
        var application = "dashboard-cancel-" + Guid.NewGuid().ToString("N")[..8];
        await using var dashboardSource = NpgsqlDataSource.Create(
            new NpgsqlConnectionStringBuilder(database.ConnectionString) { ApplicationName = application }.ConnectionString);
        using var reports = new ReportsDatabase(dashboardSource, null);
        var dashboard = new SpendDashboard(reports, new BudgetCalendar(Options.Create(new GatewayOptions()), TimeProvider.System));

        await using var holder = await database.Source.OpenConnectionAsync(Ct);
        await using var held = await holder.BeginTransactionAsync(Ct);
        await holder.ExecuteAsync($"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE", transaction: held);

        using var leave = new CancellationTokenSource();
        var load = call switch
        {
            "Daily" => (Task)dashboard.DailyAsync(new SpendFilter(Day, Day), SpendGroup.Model, leave.Token),
            "UsagePage" => dashboard.UsagePageAsync(new SpendFilter(Day, Day), 0, 50, leave.Token),
            _ => dashboard.FilterOptionsAsync(Day, Day, leave.Token),
        };
        try
        {
            await Eventually.TrueAsync(async () => load.IsCompleted || (await WaitingQueryAsync(application))?.Contains(sql, StringComparison.Ordinal) == true,
                what: $"The {call} query waiting on the lock on {table} (or the call ending)");
            Assert.False(load.IsCompleted, $"{call} ended while {table} was locked: {load.Status}");

            await leave.CancelAsync();

            var ended = await Record.ExceptionAsync(() => load.WaitAsync(Eventually.Bound, Ct));
            Assert.True(ended is OperationCanceledException,
                $"{call} did not end cancelled while {table} stayed locked: {ended?.GetType().Name ?? "it returned"} {ended?.Message}");
            Assert.True(await HoldsLockAsync(holder, held, table), $"the lock on {table} was not held through the cancellation");
            // Had the token not reached the command, Npgsql could still have given up on the connection and left its backend
            // waiting for the lock, to run the query once the table is free.
            await Eventually.TrueAsync(async () => await WaitingQueryAsync(application) is null,
                what: $"The dashboard's backend no longer waiting on {table}");
        }
        finally
        {
            await held.RollbackAsync(Ct);
            await Task.WhenAny(load, Task.Delay(Eventually.Bound, Ct)); // a call the token did not reach ends once the lock is gone
        }
    }

    // The query text of a backend of this application that is running a statement and waits for a heavyweight lock; null if none.
    private async Task<string?> WaitingQueryAsync(string application)
    {
        await using var connection = await database.Source.OpenConnectionAsync(Ct);
        return await connection.QueryFirstOrDefaultAsync<string>(
            "SELECT query FROM pg_stat_activity WHERE application_name = @application AND state = 'active' AND wait_event_type = 'Lock'",
            new { application });
    }

    private static Task<bool> HoldsLockAsync(NpgsqlConnection holder, NpgsqlTransaction held, string table) =>
        holder.ExecuteScalarAsync<bool>("""
            SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() AND granted
                             AND relation = @table::regclass AND mode = 'AccessExclusiveLock')
            """, new { table }, held);
}
