using System.Globalization;
using Gateway.Admin.Components.Shared;
using Gateway.Admin.Reports;
using Gateway.Core.Keys;
using Gateway.Core.Budgets;
using Gateway.Core.Reports;
using Microsoft.AspNetCore.Components;
using MudBlazor;

namespace Gateway.Admin.Components.Pages.Spend;

/// <summary>
/// The spend dashboard. Summary, charts and the grouped table come from the daily aggregates (one query per filter change);
/// latency percentiles from the usage rows of ranges up to <see cref="SpendDashboard.MaxLatencyDays"/> days; the drill-down
/// grid pages usage rows in SQL. A filter change cancels the queries of the previous one.
/// </summary>
public sealed partial class SpendPage : IDisposable
{
    private const int TopKeyCount = 10;

    // Stacks in the daily chart (the chart's palette stays readable); the remaining groups add up as one.
    private const int MaxStacks = 8;
    private const string Others = "(others)";

    // Blazor leaves links with a download attribute to the browser instead of routing them.
    private static readonly Dictionary<string, object?> Download = new() { ["download"] = "" };

    [Inject] private SpendDashboard Dashboard { get; set; } = default!;
    [Inject] private KeyStore Keys { get; set; } = default!;
    [Inject] private BudgetCalendar Calendar { get; set; } = default!;

    private DateRange _range = new();
    private KeyOption? _key;
    private string? _team;
    private string? _model;
    private string? _provider;
    private SpendGroup _by = SpendGroup.Model;

    // The filter of what the page shows (the grid pages with it too).
    private SpendFilter _shown = null!;
    private SpendFilterOptions _options = new([], [], []);
    private GroupRow _summary = new("");
    private List<GroupRow> _groups = [];
    private List<ChartSeries<double>> _daySeries = [];
    private string[] _dayLabels = [];
    private List<ChartSeries<double>> _keySeries = [];
    private string[] _keyLabels = [];
    private LatencyStats? _latency;
    private (DateOnly From, DateOnly To)? _optionsRange;
    private readonly LoadScope _loads = new();
    private MudDataGrid<UsageEvent>? _grid;

    private StackedBarChartOptions _dayOptions = new();
    private BarChartOptions _keyOptions = new();
    private ChartUnit _dayUnit = ChartUnit.For(0);
    private ChartUnit _keyUnit = ChartUnit.For(0);

    internal sealed record KeyOption(Guid Id, string Name, string Prefix)
    {
        public string Label => $"{Name} ({Prefix}…)";
    }

    /// <summary>One model's or provider's sums over the range (the table's rows; with an empty group, the whole view's).</summary>
    internal sealed record GroupRow(string Group, long Requests = 0, long Errors = 0, long Fallbacks = 0, long PromptTokens = 0,
        long CompletionTokens = 0, decimal CostUsd = 0);

    private DateTime Today => Calendar.Today.ToDateTime(TimeOnly.MinValue);

    private SpendFilter Filter => new(DateOnly.FromDateTime(_range.Start ?? Today), DateOnly.FromDateTime(_range.End ?? Today), _key?.Id, _team,
        _model, _provider);

    private string SpendCsvUrl => SpendQuery.Url("export/spend.csv", _shown, _by);

    private string UsageCsvUrl => SpendQuery.Url("export/usage.csv", _shown, _by);

    protected override async Task OnInitializedAsync()
    {
        var initial = SpendQuery.DefaultFilter(Calendar);
        _range = new DateRange(initial.From.ToDateTime(TimeOnly.MinValue), initial.To.ToDateTime(TimeOnly.MinValue));
        _shown = Filter;
        await ReloadAsync();
    }

    /// <summary>
    /// Reads the view for the current filters; a newer call cancels an older one still running (and so does leaving the page).
    /// The filter choices are read again when the range changed since they were read.
    /// </summary>
    private Task ReloadAsync() => _loads.LatestAsync(async ct =>
    {
        var filter = _shown = Filter;
        var by = _by;
        _latency = null;
        if ((filter.From, filter.To) != _optionsRange)
        {
            var options = await Dashboard.FilterOptionsAsync(filter.From, filter.To, ct);
            ct.ThrowIfCancellationRequested();
            (_options, _optionsRange) = (options, (filter.From, filter.To));
        }
        var daily = Dashboard.DailyAsync(filter, by, ct);
        var top = Dashboard.TopKeysAsync(filter, TopKeyCount, ct);
        await Task.WhenAll(daily, top);
        ct.ThrowIfCancellationRequested();
        Show(filter, await daily, await top);
        StateHasChanged();
        if (_grid is not null) await _grid.ReloadServerData(); // the grid cancels its own previous page load
        var latency = await Dashboard.LatencyAsync(filter, ct);
        ct.ThrowIfCancellationRequested();
        _latency = latency;
    });

    private void Show(SpendFilter filter, IReadOnlyList<DailySpend> daily, IReadOnlyList<KeySpend> top)
    {
        _groups = [.. daily.GroupBy(r => r.Group, StringComparer.Ordinal)
            .Select(g => new GroupRow(g.Key, g.Sum(r => r.Requests), g.Sum(r => r.Errors), g.Sum(r => r.Fallbacks), g.Sum(r => r.PromptTokens),
                g.Sum(r => r.CompletionTokens), g.Sum(r => r.CostUsd)))
            .OrderByDescending(g => g.CostUsd).ThenByDescending(g => g.Requests).ThenBy(g => g.Group, StringComparer.Ordinal)];
        _summary = new GroupRow("", _groups.Sum(g => g.Requests), _groups.Sum(g => g.Errors), _groups.Sum(g => g.Fallbacks),
            _groups.Sum(g => g.PromptTokens), _groups.Sum(g => g.CompletionTokens), _groups.Sum(g => g.CostUsd));

        // Every day of the range gets a bar (a day without use is an empty one), labelled sparsely on long ranges.
        var days = Enumerable.Range(0, filter.Days).Select(filter.From.AddDays).ToArray();
        var step = Math.Max(1, (int)Math.Ceiling(days.Length / 14.0));
        _dayLabels = [.. days.Select((d, i) => i % step == 0 ? d.ToString("MM-dd", CultureInfo.InvariantCulture) : "")];
        // The charts leave out what cost nothing (failed requests, say, to a model that does not exist): a $0 series or bar
        // only adds a legend entry. The table above lists every group with its requests and errors.
        var costly = _groups.Where(g => g.CostUsd > 0).ToList();
        var stacked = costly.Take(costly.Count > MaxStacks ? MaxStacks - 1 : MaxStacks).Select(g => g.Group).ToHashSet(StringComparer.Ordinal);
        var values = new Dictionary<string, decimal[]>(StringComparer.Ordinal);
        foreach (var row in daily.Where(r => r.CostUsd != 0))
        {
            var name = stacked.Contains(row.Group) ? row.Group : Others;
            if (!values.TryGetValue(name, out var series)) values[name] = series = new decimal[days.Length];
            series[row.Day.DayNumber - filter.From.DayNumber] += row.CostUsd;
        }
        var highest = days.Select((_, i) => values.Values.Sum(v => v[i])).DefaultIfEmpty(0).Max();
        _dayUnit = ChartUnit.For((double)highest);
        _dayOptions = new StackedBarChartOptions
        {
            YAxisTicks = _dayUnit.Step, YAxisToStringFunc = _dayUnit.AxisLabel, ShowLegend = true, ShowZeroValues = false,
        };
        _daySeries = [.. costly.Select(g => g.Group).Where(stacked.Contains).Append(Others).Where(values.ContainsKey)
            .Where(name => values[name].Any(v => v != 0))
            .Select(name => Series(name, values[name], _dayUnit))];

        var paid = top.Where(k => k.CostUsd > 0).ToList();
        // MudChart writes its axis labels into the SVG as markup: a key named "<img …>" became a live element. Encoded here.
        _keyLabels = [.. paid.Select(k => System.Net.WebUtility.HtmlEncode(k.KeyName.Length > 18 ? k.KeyName[..17] + "…" : k.KeyName))];
        _keyUnit = ChartUnit.For(paid.Count == 0 ? 0 : (double)paid.Max(k => k.CostUsd));
        _keyOptions = new BarChartOptions { YAxisTicks = _keyUnit.Step, YAxisToStringFunc = _keyUnit.AxisLabel, ShowLegend = false };
        _keySeries = paid.Count == 0 ? [] : [Series("Cost", [.. paid.Select(k => k.CostUsd)], _keyUnit)];
    }

    private static ChartSeries<double> Series(string name, decimal[] usd, ChartUnit unit) => new()
    {
        Name = name,
        Data = usd.Select(unit.Plot).ToArray(),
        TooltipTitleFormat = "{{SERIES_NAME}}, {{X_VALUE}}: {{Y_VALUE}}",
        TooltipYValueFormat = unit.TooltipFormat,
    };

    private async Task<GridData<UsageEvent>> LoadRowsAsync(GridState<UsageEvent> state, CancellationToken ct)
    {
        var filter = _shown;
        // The total comes from the aggregates: counting the usage rows of a long range would read them all.
        var total = await Dashboard.CountAsync(filter, ct);
        var items = await Dashboard.UsagePageAsync(filter, state.Page * state.PageSize, state.PageSize, ct);
        return new GridData<UsageEvent> { Items = items, TotalItems = (int)Math.Min(total, int.MaxValue) };
    }

    private async Task RangeAsync(DateRange range)
    {
        if (range.Start is null || range.End is null) return;
        _range = range;
        await ReloadAsync();
    }

    private async Task KeyAsync(KeyOption? key)
    {
        _key = key;
        await ReloadAsync();
    }

    private async Task TeamAsync(string? team)
    {
        _team = team;
        await ReloadAsync();
    }

    private async Task ModelAsync(string? model)
    {
        _model = model;
        await ReloadAsync();
    }

    private async Task ProviderAsync(string? provider)
    {
        _provider = provider;
        await ReloadAsync();
    }

    private async Task SplitAsync(SpendGroup by)
    {
        _by = by;
        await ReloadAsync();
    }

    /// <summary>A row of the grouped table narrows the view (and the usage rows below) to its model or provider.</summary>
    private async Task DrillIntoAsync(TableRowClickEventArgs<GroupRow> click)
    {
        if (click.Item is not { } row) return;
        if (_by == SpendGroup.Provider) _provider = row.Group;
        else _model = row.Group;
        await ReloadAsync();
    }

    private async Task<IEnumerable<KeyOption>> SearchKeysAsync(string? text, CancellationToken ct)
    {
        var (items, _) = await Keys.SearchAsync(text, null, Calendar.Today, 0, 20, ct);
        return items.Select(k => new KeyOption(k.Id, k.Name, k.Prefix));
    }

    private string LatencyText => _shown.Days > SpendDashboard.MaxLatencyDays ? "—"
        : _latency is null ? "…"
        : _latency.P50Ms is { } p50 && _latency.P95Ms is { } p95
            ? string.Create(CultureInfo.InvariantCulture, $"{p50:0} / {p95:0} ms")
            : "—";

    private string LatencyCaption => _shown.Days > SpendDashboard.MaxLatencyDays
        ? $"only for ranges up to {SpendDashboard.MaxLatencyDays} days"
        : "whole request, every request in view";

    private string Share(decimal cost) => _summary.CostUsd == 0 ? "—" : Rate(cost, _summary.CostUsd);

    internal static string Count(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    internal static string Rate(decimal part, decimal whole) =>
        whole == 0 ? "—" : (part * 100 / whole).ToString("0.0", CultureInfo.InvariantCulture) + "%";

    private static string Notes(UsageEvent row) => string.Join(", ", new[]
    {
        row.Streamed ? "streamed" : null,
        row.Attempts > 1 ? $"{row.Attempts} attempts" : null,
        row.Fallback ? "fallback" : null,
        row.CacheHit ? "cache hit" : null,
        row.DowngradedFrom is { } from ? $"downgraded from {from}" : null,
        row.RoutingRule is { } rule ? $"rule {rule}" : null,
    }.Where(n => n is not null));

    public void Dispose() => _loads.Dispose();
}
