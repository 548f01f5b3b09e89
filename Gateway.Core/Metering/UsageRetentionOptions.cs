using System.ComponentModel.DataAnnotations;

namespace Gateway.Core.Metering;

/// <summary>How long raw usage rows are kept (section <c>Gateway:Usage</c>); the daily aggregates are kept for ever.</summary>
public sealed class UsageRetentionOptions
{
    public const string SectionName = "Gateway:Usage";

    /// <summary>
    /// Days of <c>usage_events</c> kept: a UTC day's partition is dropped once it is more than this many days before today.
    /// 0 (the default) keeps every row. At least 2 otherwise: end-user budgets read today's rows, and a budget day in a time
    /// zone other than UTC spans two UTC days.
    /// </summary>
    [Range(0, 36_500)]
    public int RetentionDays { get; set; }

    /// <summary>How often an instance looks for partitions to drop (the first look is at start-up).</summary>
    [Range(1, 1440)]
    public int RetentionCheckMinutes { get; set; } = 60;
}
