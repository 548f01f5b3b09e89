using Gateway.Core.Budgets;

namespace Gateway.Core.Reports;

/// <summary>
/// What a spend view shows: budget days <paramref name="From"/>–<paramref name="To"/> (both included) and, when set, one key,
/// one team (a key tag; <c>(untagged)</c> for keys without tags), one model (the one the provider reported, else the one
/// asked for, else <c>(none)</c>) and one provider (<c>(none)</c> when no provider was reached) — the groups of the
/// daily aggregates, so the aggregates and the raw usage rows filter alike.
/// </summary>
public sealed record SpendFilter(DateOnly From, DateOnly To, Guid? KeyId = null, string? Team = null, string? Model = null, string? Provider = null)
{
    public const string Untagged = "(untagged)";

    /// <summary>Days in the range, both ends included.</summary>
    public int Days => To.DayNumber - From.DayNumber + 1;

    // Over usage_daily_models AS d.
    internal const string AggregateWhere = """
        d.day BETWEEN @from::date AND @to::date
          AND (@keyId::uuid IS NULL OR d.key_id = @keyId)
          AND (@model::text IS NULL OR d.model = @model)
          AND (@provider::text IS NULL OR d.provider = @provider)
          AND (@team::text IS NULL OR EXISTS (SELECT 1 FROM api_keys t WHERE t.id = d.key_id
                                              AND (@team = ANY (t.tags) OR @team = '(untagged)' AND cardinality(t.tags) = 0)))
        """;

    // Over usage_events AS e: the same groups as the aggregates (see migrations/0016). The time bounds only prune partitions
    // (a day wider on each side than the range: the zone may have changed since a row was stored); the stored day decides.
    internal const string UsageWhere = """
        e.day BETWEEN @from::date AND @to::date AND e.occurred_at >= @fromTime AND e.occurred_at < @toTime
          AND (@keyId::uuid IS NULL OR e.key_id = @keyId)
          AND (@model::text IS NULL OR coalesce(e.served_model, e.asked_model, '(none)') = @model)
          AND (@provider::text IS NULL OR coalesce(e.provider, '(none)') = @provider)
          AND (@team::text IS NULL OR EXISTS (SELECT 1 FROM api_keys t WHERE t.id = e.key_id
                                              AND (@team = ANY (t.tags) OR @team = '(untagged)' AND cardinality(t.tags) = 0)))
        """;

    /// <summary>
    /// The parameters of <see cref="AggregateWhere"/> and <see cref="UsageWhere"/>, with <paramref name="ct"/> for the command.
    /// The range goes as dates (<c>@from::date</c>) and as UTC instants (<c>timestamptz</c>); an unset key, team, model or
    /// provider goes as a typed NULL.
    /// </summary>
    internal SpendFilterArgs Args(BudgetCalendar calendar, CancellationToken ct) => new()
    {
        From = From,
        To = To,
        FromTime = calendar.StartOf(From).AddDays(-1),
        ToTime = calendar.StartOf(To.AddDays(1)).AddDays(1),
        KeyId = KeyId,
        Team = Team,
        Model = Model,
        Provider = Provider,
        Ct = ct,
    };
}

/// <summary>
/// A <see cref="SpendFilter"/>'s SQL parameters (named as in <see cref="SpendFilter.AggregateWhere"/> and
/// <see cref="SpendFilter.UsageWhere"/>), a page's <see cref="Offset"/> and <see cref="Limit"/>, and the command's cancellation
/// token: the typed argument Dapper.AOT binds at build time.
/// </summary>
internal sealed record SpendFilterArgs
{
    public DateOnly From { get; init; }
    public DateOnly To { get; init; }
    public DateTimeOffset FromTime { get; init; }
    public DateTimeOffset ToTime { get; init; }
    public Guid? KeyId { get; init; }
    public string? Team { get; init; }
    public string? Model { get; init; }
    public string? Provider { get; init; }
    public int Offset { get; init; }
    public int Limit { get; init; }
    public CancellationToken Ct { get; init; }
}
