using System.Diagnostics;
using Gateway.Core.Budgets;
using Gateway.Core.Catalog;
using Gateway.Core.Chat;
using Gateway.Core.Errors;
using Gateway.Core.Failover;
using Gateway.Core.Keys;
using Gateway.Core.Providers;

namespace Gateway.Core.Pipeline;

/// <summary>
/// One request while the pipeline handles it (step 1, <see cref="ChatPipeline.Start"/>): its key, its usage record, its span and log
/// scope, and what must be released at the end (the budget reservation, an open stream). Disposing it publishes the usage record
/// exactly once and settles the budget, whatever happened: a bad body, an upstream failure, the client gone, a bug.
/// </summary>
public sealed class PipelineRun : IAsyncDisposable
{
    private readonly Activity? _span;
    private readonly IDisposable? _scope;

    internal PipelineRun(GatewayKey key, RequestMeter meter, Activity? span, IDisposable? scope) =>
        (Key, Meter, _span, _scope) = (key, meter, span, scope);

    /// <summary>The key the request authenticated with.</summary>
    public GatewayKey Key { get; }

    /// <summary>The request's usage record as it is built.</summary>
    public RequestMeter Meter { get; }

    /// <summary>The id the client sees (<c>x-gateway-request-id</c>) and the usage row carries.</summary>
    public Guid RequestId => Meter.RequestId;

    /// <summary>What the caller should be told of how the request went, so far.</summary>
    public PipelineFacts Facts { get; } = new();

    /// <summary>The budget reservation to settle with the request's real cost once it is metered.</summary>
    internal Reservation? Reservation { get; set; }

    /// <summary>The stream being relayed, held back until its first token (disposed with the request).</summary>
    internal PrimedStream? Primed { get; set; }

    /// <summary>The candidate whose stream is being assembled into a non-streaming answer, while it is read.</summary>
    internal (ModelRoute Route, UpstreamStream Stream)? Assembling { get; set; }

    /// <summary>Ends the request with an error: recorded, journalled and the budget settled before the front door answers it.</summary>
    public async Task<PipelineResult> FailAsync(GatewayError error)
    {
        Meter.Failed(error);
        await FinishingAsync();
        return PipelineResult.Failed(Facts, error);
    }

    /// <summary>
    /// The client went away: charged what the provider had produced, of the stream relayed or of the one being assembled (at that
    /// candidate's prices).
    /// </summary>
    public void ClientGone()
    {
        if (Primed is null && Assembling is var (route, assembling))
        {
            Meter.Routed(route);
            Meter.ClientDisconnected(assembling.Text.ToString(), assembling.Usage);
        }
        else
        {
            Meter.ClientDisconnected(Primed?.Inner.Text.ToString() ?? "", Primed?.Inner.Usage);
        }
    }

    /// <summary>
    /// Settles the reservation at the request's cost as metered so far (once; later calls do nothing). Called as soon as
    /// the cost is known, before the answer's last bytes go out, so the key's next request already sees it spent.
    /// </summary>
    internal void SettleBudget()
    {
        if (Reservation is not { } reservation) return;
        Reservation = null;
        reservation.Settle(Meter.BudgetCost);
    }

    /// <summary>
    /// The answer is decided and its last bytes are about to go out: settle the budget and journal the usage record, so
    /// neither a crash nor a database outage after this point can lose what the client is being given.
    /// </summary>
    internal ValueTask FinishingAsync()
    {
        SettleBudget();
        return Meter.CheckpointAsync();
    }

    /// <summary>Records the candidates a call tried, and the facts of it.</summary>
    internal void Attempted<T>(FailoverResult<T> result, ModelRoute first) where T : class
    {
        Meter.Attempted(result.Attempts, first, result.Route, result.Failure is null, result.Billed);
        Facts.Attempts = result.Calls;
        Facts.Fallback = result.Failure is null && result.Route is { } served && served.Alias != first.Alias;
    }

    /// <summary>Closes an open stream, publishes the usage record (once) and settles the budget.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (Primed is { } primed) await primed.DisposeAsync();
        }
        finally
        {
            try
            {
                Meter.Describe(_span);
                await Meter.PublishAsync();
            }
            finally
            {
                SettleBudget();
                _scope?.Dispose();
                _span?.Dispose();
            }
        }
    }
}
