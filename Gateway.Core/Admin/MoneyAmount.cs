using FluentValidation;

namespace Gateway.Core.Admin;

/// <summary>Bounds every admin input shares (keys, models, tag budgets).</summary>
internal static class AdminLimits
{
    /// <summary>Largest money amount accepted (numeric(18,6) holds less than 10^12).</summary>
    public const decimal MaxUsd = 1_000_000_000m;

    /// <summary>Largest price per million tokens accepted (a cache write's default is up to twice the input price).</summary>
    public const decimal MaxPricePerMTok = 100_000m;

    public static bool Printable(string? text) => text is null || !text.Any(char.IsControl);

    /// <summary>A money field: <see cref="MoneyAmount.Problem"/> names <paramref name="field"/> as the JSON has it.</summary>
    public static IRuleBuilderOptions<T, decimal?> Money<T>(this IRuleBuilder<T, decimal?> rule, string field, decimal max) =>
        rule.Must(v => MoneyAmount.Problem(field, v, max) is null).WithMessage((_, v) => MoneyAmount.Problem(field, v, max));
}

/// <summary>
/// Money amounts (budgets, caps, prices) are stored as <c>numeric(18, 6)</c>: exactly, to the millionth. An amount with more
/// decimals is refused rather than rounded without a word (a budget of 0.0000001 would have become 0.000000).
/// </summary>
public static class MoneyAmount
{
    /// <summary>Decimals stored.</summary>
    public const int Decimals = 6;

    /// <summary>Why <paramref name="value"/> cannot be stored as <paramref name="field"/>, or null when it can (or is not set).</summary>
    public static string? Problem(string field, decimal? value, decimal max) => value switch
    {
        null => null,
        { } v when v < 0 || v > max => $"'{field}' must be between 0 and {max.ToString(System.Globalization.CultureInfo.InvariantCulture)}.",
        { } v when decimal.Round(v, Decimals) != v =>
            $"'{field}' has more than {Decimals} decimals, the most that is stored: {v.ToString(System.Globalization.CultureInfo.InvariantCulture)} "
            + $"would be stored as {decimal.Round(v, Decimals, MidpointRounding.AwayFromZero).ToString("0.000000", System.Globalization.CultureInfo.InvariantCulture)}. "
            + "Send an amount with at most 6 decimals.",
        _ => null,
    };
}
