using System.Diagnostics.Metrics;
using Gateway.Core.Failover;

namespace Gateway.Core.Metering;

/// <summary>
/// The gateway's metrics (meter <c>LlmGateway</c>), created once from <see cref="IMeterFactory"/>.
/// Labels are provider, model, status and token type only: never a key, user or prompt.
/// </summary>
public sealed class GatewayMetrics
{
    public const string MeterName = "LlmGateway";

    private readonly Counter<long> _requests;
    private readonly Histogram<long> _tokens;

    public GatewayMetrics(IMeterFactory meters, ProviderHealth health, UsageJournal journal)
    {
        var meter = meters.Create(MeterName);
        _requests = meter.CreateCounter<long>("gateway.requests", "{request}", "Requests metered, by provider, served model and status");
        // OpenTelemetry's GenAI semantic convention for token counts.
        _tokens = meter.CreateHistogram<long>("gen_ai.client.token.usage", "{token}", "Tokens per request, input and output");
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

    public void Record(UsageRecord record)
    {
        var provider = new KeyValuePair<string, object?>("gen_ai.provider.name", record.Provider ?? "none");
        var model = new KeyValuePair<string, object?>("gen_ai.response.model", record.ServedModel ?? "none");
        _requests.Add(1, provider, model, new KeyValuePair<string, object?>("http.response.status_code", (int)record.Status));
        if (record.PromptTokens > 0) _tokens.Record(record.PromptTokens, provider, model, new KeyValuePair<string, object?>("gen_ai.token.type", "input"));
        if (record.CompletionTokens > 0) _tokens.Record(record.CompletionTokens, provider, model, new KeyValuePair<string, object?>("gen_ai.token.type", "output"));
    }
}
