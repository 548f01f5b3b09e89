using System.Globalization;
using Gateway.Api.Errors;
using Gateway.Core.Budgets;
using Gateway.Core.Errors;
using Gateway.Core.Reports;

namespace Gateway.Api.Endpoints.Admin;

/// <summary>
/// Spend reports for finance: JSON, and CSV (<see cref="SpendCsv"/>: RFC 4180, UTF-8, ISO 8601 times, decimal costs, formulas
/// escaped), streamed as they are read.
/// </summary>
internal static class ReportEndpoints
{
    public static void MapReports(this RouteGroupBuilder admin)
    {
        admin.MapGet("/reports/spend", async Task<IResult> (string? group_by, string? from, string? to, SpendReports reports, BudgetCalendar calendar,
            CancellationToken ct) =>
        {
            if (Parse(group_by, from, to, calendar) is not ({ } by, var range)) return Bad(group_by, calendar);
            return TypedResults.Ok(await reports.SpendAsync(by, range.From, range.To, ct));
        });
        admin.MapGet("/reports/spend.csv", async Task<IResult> (string? group_by, string? from, string? to, SpendReports reports, BudgetCalendar calendar,
            CancellationToken ct) =>
        {
            if (Parse(group_by, from, to, calendar) is not ({ } by, var range)) return Bad(group_by, calendar);
            var rows = await reports.SpendAsync(by, range.From, range.To, ct);
            return CsvFile($"spend-by-{by.ToString().ToLowerInvariant()}-{range.From:yyyy-MM-dd}-{range.To:yyyy-MM-dd}.csv",
                body => SpendCsv.WriteSpendAsync(body, rows));
        });
        admin.MapGet("/reports/focus.csv", IResult (string? from, string? to, SpendReports reports, BudgetCalendar calendar, CancellationToken ct) =>
        {
            if (Parse("key", from, to, calendar) is not (not null, var range)) return Bad("key", calendar);
            return CsvFile($"focus-{range.From:yyyy-MM-dd}-{range.To:yyyy-MM-dd}.csv",
                body => SpendCsv.WriteFocusAsync(body, reports.FocusAsync(range.From, range.To, ct), calendar));
        });
        admin.MapGet("/reports/usage.csv", IResult (string? from, string? to, Guid? key_id, SpendReports reports, BudgetCalendar calendar,
            CancellationToken ct) =>
        {
            if (Parse("key", from, to, calendar) is not (not null, var range)) return Bad("key", calendar);
            return CsvFile($"usage-{range.From:yyyy-MM-dd}-{range.To:yyyy-MM-dd}.csv",
                body => SpendCsv.WriteUsageAsync(body, reports.UsageAsync(range.From, range.To, key_id, ct)));
        });
    }

    private static Microsoft.AspNetCore.Http.HttpResults.PushStreamHttpResult CsvFile(string name, Func<Stream, Task> write) =>
        TypedResults.Stream(write, SpendCsv.ContentType, name);

    private static (SpendGroup? By, (DateOnly From, DateOnly To) Range) Parse(string? groupBy, string? from, string? to, BudgetCalendar calendar)
    {
        var today = calendar.Today;
        SpendGroup? by = Enum.TryParse<SpendGroup>(groupBy ?? "key", ignoreCase: true, out var g) && Enum.IsDefined(g) && !int.TryParse(groupBy, out _)
            ? g : null;
        if (!Day(from, today, out var first) || !Day(to, today, out var last) || last < first || last.DayNumber - first.DayNumber >= SpendReports.MaxDays)
            return (null, default);
        return (by, (first, last));
    }

    private static bool Day(string? text, DateOnly today, out DateOnly day)
    {
        if (string.IsNullOrEmpty(text)) { day = today; return true; }
        return DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out day);
    }

    /// <summary>Why <see cref="Parse"/> refused a query: the grouping, else the range.</summary>
    private static IResult Bad(string? groupBy, BudgetCalendar calendar) =>
        OpenAIResults.Error(Parse(groupBy, null, null, calendar).By is null
            ? GatewayError.BadRequest("'group_by' must be one of: key, team, day, model, provider.", "group_by", "invalid_value")
            : GatewayError.BadRequest(
                $"'from' and 'to' must be days (YYYY-MM-DD, UTC), 'from' not after 'to', at most {SpendReports.MaxDays} days apart.", "from", "invalid_value"));
}
