using System.Globalization;

namespace Gateway.Admin.Components.Shared;

/// <summary>
/// How the admin app writes amounts of US dollars: at least cents, up to micro-dollars (a cheap request costs a few
/// millionths of a dollar), invariant culture. Two amounts shown side by side get more decimals when they differ but
/// would read the same.
/// </summary>
public static class Money
{
    // decimal keeps at most 28 digits after the point.
    private const int MaxDecimals = 28;

    /// <summary>"$1.50", "$0.000156", "$1,234.00".</summary>
    public static string Usd(decimal amount) => Usd(amount, 6);

    /// <summary>
    /// Two amounts (spent and its limit): each as <see cref="Usd(decimal)"/>, with more decimals while they differ but
    /// would read the same ("$0.00019999 of $0.0002", never "$0.0002 of $0.0002").
    /// </summary>
    public static (string First, string Second) Usd(decimal first, decimal second)
    {
        for (var decimals = 6; ; decimals++)
        {
            var (a, b) = (Usd(first, decimals), Usd(second, decimals));
            if (a != b || first == second || decimals == MaxDecimals) return (a, b);
        }
    }

    /// <summary>An amount with exactly <paramref name="decimals"/> decimals (an axis label: "$0.00005", "$0.00010").</summary>
    public static string UsdFixed(decimal amount, int decimals) =>
        (amount < 0 ? "-$" : "$") + Math.Abs(amount).ToString("#,##0." + new string('0', decimals), CultureInfo.InvariantCulture).TrimEnd('.');

    private static string Usd(decimal amount, int decimals) =>
        (amount < 0 ? "-$" : "$") + Math.Abs(amount).ToString("#,##0.00" + new string('#', decimals - 2), CultureInfo.InvariantCulture);
}
