using System.Diagnostics;
using System.Diagnostics.Metrics;
using Gateway.Core.Failover;
using Gateway.Core.Providers;
using Gateway.Core.Telemetry;

namespace Gateway.Core.Metering;

/// <summary>
/// The gateway's metrics (meter <c>LlmGateway</c>), created once from <see cref="IMeterFactory"/>. The <c>gen_ai.client.*</c>
/// instruments follow OpenTelemetry's GenAI semantic conventions (one measurement per call to a provider, recorded by
/// <see cref="UpstreamAttempt"/>); <c>gateway.*</c> ones count what the gateway decides per request. Labels are operation,
/// provider, model aliases, status and error type only: never a key, user, prompt or secret. Tags travel as
/// <see cref="TagList"/> structs, so recording allocates nothing.
/// </summary>
public sealed class GatewayMetrics
{
    public const string MeterName = GatewayTelemetry.SourceName;

    // The buckets the GenAI conventions give for durations (seconds) and token counts.
    private static readonly double[] GenAiSeconds = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
    private static readonly long[] GenAiTokens = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
    // A batch write is milliseconds when all is well, seconds when the database struggles.
    private static readonly double[] FlushSeconds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    // HTTP statuses boxed once, so counting a request allocates nothing.
    private static readonly object[] Statuses = [.. Enumerable.Range(0, 600).Select(status => (object)status)];

    private readonly Counter<long> _requests;
    private readonly Histogram<long> _tokens;
    private readonly Histogram<double> _operationDuration;
    private readonly Histogram<double> _firstChunk;
    private readonly Counter<long> _fallbacks;
    private readonly Counter<long> _downgrades;
    private readonly Histogram<double> _flushDuration;
    private readonly Counter<long> _rowsWritten;

    public GatewayMetrics(IMeterFactory meters, ProviderHealth health, UsageJournal journal, UsageChannel usage)
    {
        var meter = meters.Create(MeterName);
        _requests = meter.CreateCounter<long>("gateway.requests", "{request}",
            "Requests answered (cache hits and refusals included), by operation, provider as configured, served model and HTTP status");
        _tokens = meter.CreateHistogram("gen_ai.client.token.usage", "{token}", "Tokens per provider call as the provider reported them, input and output",
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = GenAiTokens });
        _operationDuration = meter.CreateHistogram("gen_ai.client.operation.duration", "s",
            "Duration of each provider call (a stream until its end); error.type says why one failed",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = GenAiSeconds });
        _firstChunk = meter.CreateHistogram("gen_ai.client.operation.time_to_first_chunk", "s",
            "Streams: time from sending a provider call to its first chunk with content (text or a tool call)",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = GenAiSeconds });
        _fallbacks = meter.CreateCounter<long>("gateway.fallbacks", "{request}",
            "Requests served by a fallback, not the first candidate, by the model aliases from and to");
        _downgrades = meter.CreateCounter<long>("gateway.budget.downgrades", "{request}",
            "Requests a budget sent to a cheaper model, by the model aliases from and to");
        _flushDuration = meter.CreateHistogram("gateway.metering.flush.duration", "s", "Time to write one batch of usage records to PostgreSQL",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = FlushSeconds });
        _rowsWritten = meter.CreateCounter<long>("gateway.metering.rows_written", "{record}",
            "Usage records written to PostgreSQL (journal replays included; a replayed record already stored is not inserted twice)");
        meter.CreateObservableGauge("gateway.metering.queue_depth", () => usage.Reader.Count, "{record}",
            "Usage records waiting in memory for the writer");
        meter.CreateObservableGauge("gateway.provider.circuit_state", () => health.States().Select(s =>
        {
            var slash = s.Key.IndexOf('/', StringComparison.Ordinal);
            return new Measurement<int>(s.Value switch { "Closed" => 0, "CoolingDown" => 2, _ => 1 },
                new KeyValuePair<string, object?>("provider", slash < 0 ? s.Key : s.Key[..slash]),
                new KeyValuePair<string, object?>("model", slash < 0 ? "*" : s.Key[(slash + 1)..]));
        }),
            "{state}", "Per provider on this instance: 0 closed, 1 open or half-open, 2 cooling down after Retry-After");
        meter.CreateObservableGauge("gateway.metering.journal_size", () => journal.Bytes, "By",
            "Bytes of usage records in the local journal (records not yet in PostgreSQL, and the current file)");
        meter.CreateObservableGauge("gateway.metering.journal_files_to_replay", () => journal.SegmentsToReplay, "{file}",
            "Journal files waiting to be replayed into PostgreSQL (a database outage, or an earlier run's leftovers)");
    }

    /// <summary>
    /// One answered request: counted by operation, the provider and model that served it (<c>none</c> when none did) and
    /// status; a request a fallback served also counts from the first candidate's alias to the one that served.
    /// </summary>
    internal void Requested(UsageRecord record, string operation, string? fallbackFrom, string? servedAlias)
    {
        _requests.Add(1, new TagList
        {
            { GatewayTelemetry.OperationName, operation },
            { GatewayTelemetry.GatewayProvider, record.Provider ?? "none" },
            { GatewayTelemetry.ResponseModel, record.ServedModel ?? "none" },
            { "http.response.status_code", record.Status is >= 0 and < 600 ? Statuses[record.Status] : (int)record.Status },
        });
        if (fallbackFrom is not null && servedAlias is not null)
            _fallbacks.Add(1, new KeyValuePair<string, object?>("gateway.model.from", fallbackFrom), new KeyValuePair<string, object?>("gateway.model.to", servedAlias));
    }

    /// <summary>A budget sent a request from the alias it asked for (or its rule's) to a cheaper one.</summary>
    internal void Downgraded(string from, string to) =>
        _downgrades.Add(1, new KeyValuePair<string, object?>("gateway.model.from", from), new KeyValuePair<string, object?>("gateway.model.to", to));

    internal void OperationEnded(in TagList tags, double seconds) => _operationDuration.Record(seconds, tags);

    internal void FirstChunk(in TagList tags, double seconds) => _firstChunk.Record(seconds, tags);

    internal void Tokens(in TagList tags, TokenUsage usage)
    {
        if (usage.PromptTokens > 0)
        {
            var input = tags;
            input.Add(GatewayTelemetry.TokenType, "input");
            _tokens.Record(usage.PromptTokens, input);
        }
        if (usage.CompletionTokens > 0)
        {
            var output = tags;
            output.Add(GatewayTelemetry.TokenType, "output");
            _tokens.Record(usage.CompletionTokens, output);
        }
    }

    /// <summary>One batch of usage records committed.</summary>
    internal void Flushed(int records, double seconds)
    {
        _flushDuration.Record(seconds);
        _rowsWritten.Add(records);
    }
}
