extern alias admin;

using admin::Gateway.Admin.Components.Pages.Spend;
using admin::Gateway.Admin.Components.Shared;

namespace Gateway.Tests.Admin;

/// <summary>How the admin app writes dollars: amounts, spent-of-limit pairs, and the spend charts' axes.</summary>
public sealed class MoneyFormatTests
{
    [Theory]
    [InlineData("0", "$0.00")]
    [InlineData("5", "$5.00")]
    [InlineData("0.5", "$0.50")]
    [InlineData("0.000156", "$0.000156")]
    [InlineData("0.0000004", "$0.00")]
    [InlineData("1234.5", "$1,234.50")]
    [InlineData("-2.25", "-$2.25")]
    public void Usd_KeepsCentsAndUpToMicroDollars(string amount, string expected) =>
        Assert.Equal(expected, Money.Usd(decimal.Parse(amount, System.Globalization.CultureInfo.InvariantCulture)));

    [Theory]
    [InlineData("0.000156", "0.0002", "$0.000156", "$0.0002")] // the budget bar once read "$0.0002 of $0.0002" at 78%
    [InlineData("0.00019999", "0.0002", "$0.00019999", "$0.0002")]
    [InlineData("0.000200001", "0.0002", "$0.000200001", "$0.0002")]
    [InlineData("0.0002", "0.0002", "$0.0002", "$0.0002")]
    [InlineData("0", "5", "$0.00", "$5.00")]
    [InlineData("4.9999999", "5", "$4.9999999", "$5.00")]
    public void UsdPair_TellsDifferentAmountsApart(string spent, string limit, string expectedSpent, string expectedLimit)
    {
        var (a, b) = Money.Usd(decimal.Parse(spent, System.Globalization.CultureInfo.InvariantCulture),
            decimal.Parse(limit, System.Globalization.CultureInfo.InvariantCulture));

        Assert.Equal((expectedSpent, expectedLimit), (a, b));
    }

    [Theory]
    [InlineData(0.000193, 1_000_000, 50, "$0.00005", "$0.00010")] // a cheap model's day: micro-dollars plotted, dollars shown
    [InlineData(0.003, 1000, 1, "$0.001", "$0.002")]
    [InlineData(0.03, 1000, 10, "$0.01", "$0.02")]
    [InlineData(0.2, 1000, 50, "$0.05", "$0.10")]
    [InlineData(0.4, 1000, 100, "$0.10", "$0.20")]
    [InlineData(3, 1, 1, "$1", "$2")]
    [InlineData(42, 1, 10, "$10", "$20")]
    [InlineData(12_345, 1, 5000, "$5,000", "$10,000")]
    public void ChartUnit_StepsInWholePlottedUnits_AndLabelsInDollars(double maxUsd, double perUsd, int step, string first, string second)
    {
        var unit = ChartUnit.For(maxUsd);

        Assert.Equal((perUsd, step), (unit.PerUsd, unit.Step));
        Assert.Equal("$0", unit.AxisLabel(0));
        Assert.Equal(first, unit.AxisLabel(step));
        Assert.Equal(second, unit.AxisLabel(2 * step));
        Assert.InRange(maxUsd * unit.PerUsd / unit.Step, 2, 10); // a handful of grid lines
    }

    [Fact]
    public void ChartUnit_WithNothingToDraw_IsWholeDollars()
    {
        var unit = ChartUnit.For(0);

        Assert.Equal((1d, 1), (unit.PerUsd, unit.Step));
    }

    [Theory]
    [InlineData(0.000193, 0.000156)]
    [InlineData(0.4, 0.123456)]
    [InlineData(42, 17.5)]
    public void ChartUnit_TooltipFormat_WritesThePlottedValueAsDollars(double maxUsd, double amount)
    {
        var unit = ChartUnit.For(maxUsd);

        Assert.Equal(Money.Usd((decimal)amount), unit.Tooltip(unit.Plot((decimal)amount)));
    }
}
