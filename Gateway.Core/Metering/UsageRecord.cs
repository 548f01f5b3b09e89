namespace Gateway.Core.Metering;

/// <summary>One request's usage row, as stored in <c>usage_events</c>. Money is exact (decimal USD).</summary>
public sealed class UsageRecord
{
    public required Guid RequestId { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
    public required Guid KeyId { get; init; }
    /// <summary>The budget day the row counts on (<see cref="Budgets.BudgetCalendar"/>).</summary>
    public required DateOnly Day { get; init; }
    public string? EndUser { get; set; }
    public string? AskedModel { get; set; }
    public string? ServedModel { get; set; }
    public string? Provider { get; set; }
    public int PromptTokens { get; set; }
    public int CompletionTokens { get; set; }
    /// <summary>Prompt tokens read from the provider's prompt cache.</summary>
    public int CachedTokens { get; set; }
    /// <summary>Prompt tokens written to the provider's prompt cache (Anthropic's 5-minute entries, or a provider that does not say how long).</summary>
    public int CacheWriteTokens { get; set; }
    /// <summary>Prompt tokens written to Anthropic's 1-hour cache entries.</summary>
    public int CacheWrite1hTokens { get; set; }
    public bool UsageEstimated { get; set; }
    public decimal? InputPricePerMTok { get; set; }
    public decimal? OutputPricePerMTok { get; set; }
    public decimal? CachedInputPricePerMTok { get; set; }
    public decimal? CacheWritePricePerMTok { get; set; }
    public decimal? CacheWrite1hPricePerMTok { get; set; }
    public decimal CostUsd { get; set; }
    public int LatencyMs { get; set; }
    public int? TtftMs { get; set; }
    public short Status { get; set; }
    public string? ErrorKind { get; set; }
    public bool Streamed { get; set; }
    /// <summary>The front door the request came in through (<see cref="Pipeline.FrontDoorNames"/>).</summary>
    public string? FrontDoor { get; set; }
    public short Attempts { get; set; } = 1;
    public bool Fallback { get; set; }
    /// <summary>JSON array of the candidates tried (provider, model, outcome, ms); null when one call served.</summary>
    public string? AttemptTrail { get; set; }
    public string? RoutingRule { get; set; }
    public Guid? LeaseId { get; set; }
    public string? DowngradedFrom { get; set; }
    public bool CacheHit { get; set; }
    /// <summary>Categories the prompt-injection filter found (flagged or blocked); null when it was off or found nothing.</summary>
    public IReadOnlyList<string>? InjectionFlags { get; set; }

    /// <summary>
    /// A journal line only (never stored as such): what the request leaves if the process dies before it ends. Replayed by the
    /// next start for a request whose final record never made it, as an interrupted row.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public bool InFlight { get; set; }

    /// <summary>The request's in-flight line, journaled before its upstream call; released once this record is in PostgreSQL.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    internal UsageRecord? InFlightLine { get; set; }

    /// <summary>A copy of the record as it stands, not journaled yet.</summary>
    internal UsageRecord Copy()
    {
        var copy = (UsageRecord)MemberwiseClone();
        copy.Segment = null;
        copy.InFlightLine = null;
        return copy;
    }

    /// <summary>The journal file the record was appended to, until it is in PostgreSQL.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    internal JournalSegment? Segment { get; set; }
}
