using System.Globalization;
using Gateway.Core.Budgets;
using Gateway.Core.Reports;

namespace Gateway.Admin.Reports;

/// <summary>
/// CSV of the spend dashboard's current view, for finance (Admin and Finance roles), in the admin REST API's CSV format
/// (<see cref="SpendCsv"/>). <c>GET /export/spend.csv</c>: one row per budget day and model (or provider), read from the daily
/// aggregates. <c>GET /export/usage.csv</c>: the raw usage rows behind it, oldest first, streamed from the database.
/// </summary>
internal static class SpendExportEndpoints
{
    /// <summary>The authorization policy of everything that shows spend: the Admin and Finance roles.</summary>
    public const string Policy = "spend-readers";

    public static void MapSpendExport(this IEndpointRouteBuilder app)
    {
        var export = app.MapGroup("/export").RequireAuthorization(Policy);
        export.MapGet("/spend.csv", async Task<IResult> (string? from, string? to, Guid? key_id, string? team, string? model, string? provider,
            string? group_by, SpendDashboard dashboard, BudgetCalendar calendar, CancellationToken ct) =>
        {
            var (filter, by, error) = SpendQuery.Parse(from, to, key_id, team, model, provider, group_by, calendar);
            if (filter is null) return Bad(error);
            var rows = await dashboard.DailyAsync(filter, by, ct);
            return TypedResults.Stream(body => SpendCsv.WriteDailyAsync(body, by, rows), SpendCsv.ContentType,
                $"spend-by-{by.ToString().ToLowerInvariant()}-{Days(filter)}.csv");
        });
        export.MapGet("/usage.csv", IResult (string? from, string? to, Guid? key_id, string? team, string? model, string? provider,
            SpendReports reports, BudgetCalendar calendar, CancellationToken ct) =>
        {
            var (filter, _, error) = SpendQuery.Parse(from, to, key_id, team, model, provider, null, calendar);
            if (filter is null) return Bad(error);
            return TypedResults.Stream(body => SpendCsv.WriteUsageAsync(body, reports.UsageAsync(filter, ct)), SpendCsv.ContentType,
                $"usage-{Days(filter)}.csv");
        });
    }

    private static string Days(SpendFilter filter) =>
        string.Create(CultureInfo.InvariantCulture, $"{filter.From:yyyy-MM-dd}-{filter.To:yyyy-MM-dd}");

    private static Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult Bad(string? error) => TypedResults.Problem(error, statusCode: StatusCodes.Status400BadRequest);
}
