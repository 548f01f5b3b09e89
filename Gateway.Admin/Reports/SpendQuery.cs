using System.Globalization;
using Gateway.Core.Budgets;
using Gateway.Core.Reports;

namespace Gateway.Admin.Reports;

/// <summary>
/// The spend dashboard's filters as a query string (<c>from</c>, <c>to</c>, <c>key_id</c>, <c>team</c>, <c>model</c>,
/// <c>provider</c>, <c>group_by</c>): the page's export links write it, the export endpoints read it back.
/// </summary>
internal static class SpendQuery
{
    /// <summary>The range the dashboard opens with: this many budget days, ending today.</summary>
    public const int DefaultDays = 7;

    public static SpendFilter DefaultFilter(BudgetCalendar calendar) => new(calendar.Today.AddDays(1 - DefaultDays), calendar.Today);

    public static string Url(string path, SpendFilter filter, SpendGroup by)
    {
        var pairs = new List<KeyValuePair<string, string?>>
        {
            new("from", filter.From.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)),
            new("to", filter.To.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)),
            new("key_id", filter.KeyId?.ToString()),
            new("team", filter.Team),
            new("model", filter.Model),
            new("provider", filter.Provider),
            new("group_by", by == SpendGroup.Provider ? "provider" : "model"),
        };
        return path + QueryString.Create(pairs.Where(p => p.Value is not null));
    }

    /// <summary>The filter a query names, or why it names none. Missing days default to the dashboard's range.</summary>
    public static (SpendFilter? Filter, SpendGroup By, string? Error) Parse(string? from, string? to, Guid? keyId, string? team, string? model,
        string? provider, string? groupBy, BudgetCalendar calendar)
    {
        var fallback = DefaultFilter(calendar);
        if (!Day(from, fallback.From, out var first) || !Day(to, fallback.To, out var last) || last < first
            || last.DayNumber - first.DayNumber >= SpendReports.MaxDays)
            return (null, default, $"'from' and 'to' must be days (YYYY-MM-DD), 'from' not after 'to', at most {SpendReports.MaxDays} days apart.");
        SpendGroup? by = groupBy switch
        {
            null or "" or "model" => SpendGroup.Model,
            "provider" => SpendGroup.Provider,
            _ => null,
        };
        if (by is null) return (null, default, "'group_by' must be model or provider.");
        return (new SpendFilter(first, last, keyId, Blank(team), Blank(model), Blank(provider)), by.Value, null);
    }

    private static string? Blank(string? text) => string.IsNullOrEmpty(text) ? null : text;

    private static bool Day(string? text, DateOnly fallback, out DateOnly day)
    {
        if (string.IsNullOrEmpty(text)) { day = fallback; return true; }
        return DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out day);
    }
}
