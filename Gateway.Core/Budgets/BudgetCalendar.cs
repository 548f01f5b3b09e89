using Microsoft.Extensions.Options;

namespace Gateway.Core.Budgets;

/// <summary>
/// The budget day: daily budgets reset, and usage counts on a day, at midnight in <c>Gateway:BudgetTimeZone</c>
/// (an IANA zone id, UTC by default). Monthly budgets follow the same calendar.
/// </summary>
public sealed class BudgetCalendar
{
    private readonly TimeProvider _time;

    public BudgetCalendar(IOptions<GatewayOptions> options, TimeProvider time)
    {
        _time = time;
        Zone = TimeZoneInfo.FindSystemTimeZoneById(options.Value.BudgetTimeZone);
    }

    public TimeZoneInfo Zone { get; }

    /// <summary>The budget day an instant falls on.</summary>
    public DateOnly DayOf(DateTimeOffset instant) => DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(instant, Zone).DateTime);

    public DateOnly Today => DayOf(_time.GetUtcNow());

    /// <summary>The instant a budget day starts (its first local moment, for a zone whose clocks skip midnight).</summary>
    public DateTimeOffset StartOf(DateOnly day)
    {
        var local = day.ToDateTime(TimeOnly.MinValue, DateTimeKind.Unspecified);
        while (Zone.IsInvalidTime(local)) local = local.AddMinutes(15);
        return new DateTimeOffset(TimeZoneInfo.ConvertTimeToUtc(local, Zone), TimeSpan.Zero);
    }
}
