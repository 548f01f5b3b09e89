using System.Globalization;
using Gateway.Admin.Components.Shared;

namespace Gateway.Admin.Components.Pages.Spend;

/// <summary>
/// The money axis of a spend chart, in US dollars. MudBlazor steps an axis in whole units of the numbers it plots, so the
/// charts plot amounts scaled by <see cref="PerUsd"/> (1, a thousand, a million… whatever makes the step whole) and label
/// the axis back in dollars, with as many decimals as the step needs: "$0.00005, $0.00010…" for a cheap model's day.
/// </summary>
/// <param name="PerUsd">Plotted units per dollar: a power of 1000.</param>
/// <param name="Step">The axis step in plotted units (1, 2 or 5 times a power of ten, in dollars).</param>
/// <param name="Decimals">Decimals of the axis labels: none for whole dollars, else at least cents.</param>
public sealed record ChartUnit(double PerUsd, int Step, int Decimals)
{
    /// <summary>The unit for a chart whose highest bar is <paramref name="maxUsd"/> dollars: about five grid lines.</summary>
    public static ChartUnit For(double maxUsd)
    {
        var rough = maxUsd > 0 ? maxUsd / 5 : 1;
        var exponent = (int)Math.Floor(Math.Log10(rough));
        var mantissa = (rough / Math.Pow(10, exponent)) switch { <= 1.000001 => 1, <= 2.000001 => 2, <= 5.000001 => 5, _ => 10 };
        if (mantissa == 10) (mantissa, exponent) = (1, exponent + 1);
        var thousands = exponent >= 0 ? 0 : (2 - exponent) / 3; // the smallest power of 1000 that makes the step whole
        var perUsd = Math.Pow(1000, thousands);
        var step = Math.Round(mantissa * Math.Pow(10, exponent) * perUsd);
        return new ChartUnit(perUsd, (int)Math.Clamp(step, 1, int.MaxValue), exponent >= 0 ? 0 : Math.Max(2, -exponent));
    }

    /// <summary>Plotted units for an amount.</summary>
    public double Plot(decimal usd) => (double)usd * PerUsd;

    /// <summary>An axis label: the plotted value back in dollars ("$0" at the foot).</summary>
    public string AxisLabel(double plotted) =>
        plotted == 0 ? "$0" : Money.UsdFixed(Math.Round((decimal)plotted / (decimal)PerUsd, Decimals), Decimals);

    /// <summary>
    /// The .NET format that writes a plotted value as dollars (a series' tooltip takes a format, not a function): each
    /// comma right before the point divides by a thousand.
    /// </summary>
    public string TooltipFormat =>
        "$#,##0" + new string(',', (int)Math.Round(Math.Log10(PerUsd) / 3)) + ".00####";

    /// <summary>The same text as <see cref="TooltipFormat"/> gives (for tests).</summary>
    public string Tooltip(double plotted) => plotted.ToString(TooltipFormat, CultureInfo.InvariantCulture);
}
