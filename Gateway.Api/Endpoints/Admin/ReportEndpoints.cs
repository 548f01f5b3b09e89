using System.Globalization;
using CsvHelper;
using CsvHelper.Configuration;
using Gateway.Api.Errors;
using Gateway.Core.Budgets;
using Gateway.Core.Errors;
using Gateway.Core.Reports;

namespace Gateway.Api.Endpoints.Admin;

/// <summary>
/// Spend reports for finance: JSON, and CSV (RFC 4180: CRLF, quoted where needed, UTF-8; ISO 8601 times; decimal costs;
/// cells starting with = + - @ escaped against formula injection), streamed as they are read.
/// </summary>
internal static class ReportEndpoints
{
    private static readonly CsvConfiguration Csv = new(CultureInfo.InvariantCulture)
    {
        NewLine = "\r\n",
        InjectionOptions = InjectionOptions.Escape,
    };

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
            return CsvFile($"spend-by-{by.ToString().ToLowerInvariant()}-{range.From:yyyy-MM-dd}-{range.To:yyyy-MM-dd}.csv", async csv =>
            {
                foreach (var name in (string[])["group", "key_id", "requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd"])
                    csv.WriteField(name);
                await csv.NextRecordAsync();
                foreach (var row in rows)
                {
                    csv.WriteField(row.Group);
                    csv.WriteField(row.KeyId?.ToString() ?? "");
                    Numbers(csv, row.Requests, row.Errors, row.PromptTokens, row.CompletionTokens);
                    csv.WriteField(row.CostUsd.ToString(CultureInfo.InvariantCulture));
                    await csv.NextRecordAsync();
                }
            });
        });
        MapFocus(admin);
        admin.MapGet("/reports/usage.csv", IResult (string? from, string? to, Guid? key_id, SpendReports reports, BudgetCalendar calendar,
            CancellationToken ct) =>
        {
            if (Parse("key", from, to, calendar) is not (not null, var range)) return Bad("key", calendar);
            return CsvFile($"usage-{range.From:yyyy-MM-dd}-{range.To:yyyy-MM-dd}.csv", async csv =>
            {
                foreach (var name in (string[])["request_id", "occurred_at", "key_id", "key_name", "end_user", "asked_model", "served_model",
                    "provider", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd", "latency_ms", "status", "cache_hit", "downgraded_from"])
                    csv.WriteField(name);
                await csv.NextRecordAsync();
                await foreach (var row in reports.UsageAsync(range.From, range.To, key_id, ct))
                {
                    foreach (var text in (string?[])[row.RequestId.ToString(), row.OccurredAt, row.KeyId.ToString(), row.KeyName, row.EndUser,
                        row.AskedModel, row.ServedModel, row.Provider])
                        csv.WriteField(text ?? "");
                    Numbers(csv, row.PromptTokens, row.CompletionTokens, row.CachedTokens);
                    csv.WriteField(row.CostUsd.ToString(CultureInfo.InvariantCulture));
                    Numbers(csv, row.LatencyMs, row.Status);
                    csv.WriteField(row.CacheHit ? "true" : "false");
                    csv.WriteField(row.DowngradedFrom ?? "");
                    await csv.NextRecordAsync();
                }
            });
        });
    }

    /// <summary>FinOps FOCUS (1.0 columns): one Usage charge per day, key (the sub-account), provider and model.</summary>
    private static readonly string[] FocusColumns =
    [
        "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory",
        "ChargeClass", "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart", "ConsumedQuantity", "ConsumedUnit",
        "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingCategory", "PricingQuantity", "PricingUnit", "ProviderName",
        "PublisherName", "RegionId", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceName", "SkuId", "SubAccountId",
        "SubAccountName", "Tags", "x_Requests",
    ];

    private static void MapFocus(RouteGroupBuilder admin) =>
        admin.MapGet("/reports/focus.csv", IResult (string? from, string? to, SpendReports reports, BudgetCalendar calendar, CancellationToken ct) =>
        {
            if (Parse("key", from, to, calendar) is not (not null, var range)) return Bad("key", calendar);
            return CsvFile($"focus-{range.From:yyyy-MM-dd}-{range.To:yyyy-MM-dd}.csv", async csv =>
            {
                foreach (var name in FocusColumns) csv.WriteField(name);
                await csv.NextRecordAsync();
                await foreach (var c in reports.FocusAsync(range.From, range.To, ct))
                {
                    var day = c.Day;
                    var month = new DateOnly(day.Year, day.Month, 1);
                    var cost = c.CostUsd.ToString(CultureInfo.InvariantCulture);
                    var tokens = c.Tokens.ToString(CultureInfo.InvariantCulture);
                    var tags = System.Text.Json.JsonSerializer.Serialize(c.KeyTags.Distinct(StringComparer.Ordinal).ToDictionary(t => "gateway/" + t, _ => "true"));
                    foreach (var field in (string[])[
                        cost, c.Provider, c.Provider, "USD", Iso(calendar, month.AddMonths(1)), Iso(calendar, month), "Usage",
                        "", $"{c.Model} tokens via {c.Provider}", "Usage-Based", Iso(calendar, day.AddDays(1)), Iso(calendar, day), tokens, "Tokens",
                        cost, cost, c.Provider, cost, "Standard", tokens, "Tokens", c.Provider,
                        c.Provider, "", c.Model, c.Model, "Model", "AI and Machine Learning", c.Model, c.Model, c.KeyId.ToString(),
                        c.KeyName, tags, c.Requests.ToString(CultureInfo.InvariantCulture)])
                        csv.WriteField(field);
                    await csv.NextRecordAsync();
                }
            });
        });

    // FOCUS periods are UTC instants: a budget day runs from its zone's midnight to the next.
    private static string Iso(BudgetCalendar calendar, DateOnly day) =>
        calendar.StartOf(day).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static void Numbers(CsvWriter csv, params ReadOnlySpan<long> values)
    {
        foreach (var value in values) csv.WriteField(value.ToString(CultureInfo.InvariantCulture));
    }

    private static Microsoft.AspNetCore.Http.HttpResults.PushStreamHttpResult CsvFile(string name, Func<CsvWriter, Task> write) =>
        TypedResults.Stream(async body =>
        {
            await using var writer = new StreamWriter(body, new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false), leaveOpen: true);
            await using var csv = new CsvWriter(writer, Csv);
            await write(csv);
            await csv.FlushAsync();
        }, "text/csv; charset=utf-8", name);

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
