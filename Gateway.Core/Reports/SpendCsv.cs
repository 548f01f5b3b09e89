using System.Globalization;
using System.Text;
using CsvHelper;
using CsvHelper.Configuration;
using Gateway.Core.Budgets;

namespace Gateway.Core.Reports;

/// <summary>
/// The spend reports as CSV, shared by the admin REST API and the admin app: RFC 4180 (comma, CRLF, quoted where
/// needed, and always when a cell holds a CR or LF), UTF-8 without a BOM, ISO 8601 UTC times, costs as the database's exact
/// decimals, and a cell starting with = + - @ tab CR or LF written with a leading <c>'</c> so a spreadsheet never runs it as a
/// formula. Each writer writes to the
/// response body as rows arrive; the streamed ones never hold the whole file.
/// </summary>
public static class SpendCsv
{
    public const string ContentType = "text/csv; charset=utf-8";

    private static readonly CsvConfiguration Csv = new(CultureInfo.InvariantCulture)
    {
        NewLine = "\r\n",
        // CsvHelper quotes a cell holding its NewLine (CRLF), not a bare CR or LF, which a spreadsheet takes as a row break:
        // a client's "abc\n=3+3" became a row of its own starting with a formula.
        ShouldQuote = args => args.Field is { Length: > 0 } field
            && (field.AsSpan().IndexOfAny("\r\n,\"") >= 0 || char.IsWhiteSpace(field[0]) || char.IsWhiteSpace(field[^1])),
        InjectionOptions = InjectionOptions.Escape,
        InjectionCharacters = ['=', '@', '+', '-', '\t', '\r', '\n'],
    };

    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>Spend per group over a range (<see cref="SpendReports.SpendAsync"/>).</summary>
    public static Task WriteSpendAsync(Stream body, IEnumerable<SpendRow> rows) => WriteAsync(body, async csv =>
    {
        Header(csv, "group", "key_id", "requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd");
        await csv.NextRecordAsync();
        foreach (var row in rows)
        {
            csv.WriteField(row.Group);
            csv.WriteField(row.KeyId?.ToString() ?? "");
            Numbers(csv, row.Requests, row.Errors, row.PromptTokens, row.CompletionTokens);
            csv.WriteField(Cost(row.CostUsd));
            await csv.NextRecordAsync();
        }
    });

    /// <summary>Raw usage rows, one per request, in the order they come (<see cref="SpendReports.UsageAsync(SpendFilter, CancellationToken)"/>).</summary>
    public static Task WriteUsageAsync(Stream body, IAsyncEnumerable<UsageRow> rows) => WriteAsync(body, async csv =>
    {
        Header(csv, "request_id", "occurred_at", "key_id", "key_name", "end_user", "asked_model", "served_model",
            "provider", "prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens", "cache_write_1h_tokens", "cost_usd", "latency_ms",
            "status", "cache_hit", "downgraded_from");
        await csv.NextRecordAsync();
        await foreach (var row in rows)
        {
            foreach (var text in (string?[])[row.RequestId.ToString(), row.OccurredAt, row.KeyId.ToString(), row.KeyName, row.EndUser,
                row.AskedModel, row.ServedModel, row.Provider])
                csv.WriteField(text ?? "");
            Numbers(csv, row.PromptTokens, row.CompletionTokens, row.CachedTokens, row.CacheWriteTokens, row.CacheWrite1hTokens);
            csv.WriteField(Cost(row.CostUsd));
            Numbers(csv, row.LatencyMs, row.Status);
            csv.WriteField(row.CacheHit ? "true" : "false");
            csv.WriteField(row.DowngradedFrom ?? "");
            await csv.NextRecordAsync();
        }
    });

    /// <summary>
    /// The dashboard's view: one row per budget day and model (or provider), oldest first, named by <paramref name="by"/>'s column.
    /// </summary>
    public static Task WriteDailyAsync(Stream body, SpendGroup by, IEnumerable<DailySpend> rows) => WriteAsync(body, async csv =>
    {
        Header(csv, "day", by == SpendGroup.Provider ? "provider" : "model", "requests", "errors", "fallbacks", "prompt_tokens",
            "completion_tokens", "cached_tokens", "cost_usd");
        await csv.NextRecordAsync();
        foreach (var row in rows)
        {
            csv.WriteField(row.Day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
            csv.WriteField(row.Group);
            Numbers(csv, row.Requests, row.Errors, row.Fallbacks, row.PromptTokens, row.CompletionTokens, row.CachedTokens);
            csv.WriteField(Cost(row.CostUsd));
            await csv.NextRecordAsync();
        }
    });

    /// <summary>
    /// FinOps FOCUS (1.0 columns): one Usage charge per day, key (the sub-account), provider and model; after them, custom
    /// <c>x_</c> columns (FOCUS's prefix for them): requests, and the prompt tokens read from and written to the providers' caches.
    /// </summary>
    private static readonly string[] FocusColumns =
    [
        "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory",
        "ChargeClass", "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart", "ConsumedQuantity", "ConsumedUnit",
        "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingCategory", "PricingQuantity", "PricingUnit", "ProviderName",
        "PublisherName", "RegionId", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceName", "SkuId", "SubAccountId",
        "SubAccountName", "Tags", "x_Requests", "x_CacheReadTokens", "x_CacheWriteTokens", "x_CacheWrite1hTokens",
    ];

    /// <summary>FOCUS usage charges (<see cref="SpendReports.FocusAsync"/>); periods are the budget days' UTC instants.</summary>
    public static Task WriteFocusAsync(Stream body, IAsyncEnumerable<FocusCharge> charges, BudgetCalendar calendar) => WriteAsync(body, async csv =>
    {
        Header(csv, FocusColumns);
        await csv.NextRecordAsync();
        await foreach (var c in charges)
        {
            var day = c.Day;
            var month = new DateOnly(day.Year, day.Month, 1);
            var cost = Cost(c.CostUsd);
            var tokens = c.Tokens.ToString(CultureInfo.InvariantCulture);
            var tags = System.Text.Json.JsonSerializer.Serialize(c.KeyTags.Distinct(StringComparer.Ordinal).ToDictionary(t => "gateway/" + t, _ => "true"), Persistence.StoredJson.Default.DictionaryStringString);
            foreach (var field in (string[])[
                cost, c.Provider, c.Provider, "USD", Iso(calendar, month.AddMonths(1)), Iso(calendar, month), "Usage",
                "", $"{c.Model} tokens via {c.Provider}", "Usage-Based", Iso(calendar, day.AddDays(1)), Iso(calendar, day), tokens, "Tokens",
                cost, cost, c.Provider, cost, "Standard", tokens, "Tokens", c.Provider,
                c.Provider, "", c.Model, c.Model, "Model", "AI and Machine Learning", c.Model, c.Model, c.KeyId.ToString(),
                c.KeyName, tags, c.Requests.ToString(CultureInfo.InvariantCulture)])
                csv.WriteField(field);
            Numbers(csv, c.CachedTokens, c.CacheWriteTokens, c.CacheWrite1hTokens);
            await csv.NextRecordAsync();
        }
    });

    private static async Task WriteAsync(Stream body, Func<CsvWriter, Task> write)
    {
        await using var writer = new StreamWriter(body, Utf8, leaveOpen: true);
        await using var csv = new CsvWriter(writer, Csv);
        await write(csv);
        await csv.FlushAsync();
    }

    // FOCUS periods are UTC instants: a budget day runs from its zone's midnight to the next.
    private static string Iso(BudgetCalendar calendar, DateOnly day) =>
        calendar.StartOf(day).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    // The database's digits (numeric → decimal keeps its scale), never a float's rounding.
    private static string Cost(decimal value) => value.ToString(CultureInfo.InvariantCulture);

    private static void Header(CsvWriter csv, params ReadOnlySpan<string> names)
    {
        foreach (var name in names) csv.WriteField(name);
    }

    private static void Numbers(CsvWriter csv, params ReadOnlySpan<long> values)
    {
        foreach (var value in values) csv.WriteField(value.ToString(CultureInfo.InvariantCulture));
    }
}
