using Gateway.Core.Keys;
using Gateway.Core.Metering;
using Gateway.Core.Telemetry;
using Gateway.Core.Tokens;

namespace Gateway.Core.Chat;

/// <summary>Starts each request's <see cref="RequestMeter"/> (step 10 of the pipeline begins with the request).</summary>
public sealed class RequestMeters(TokenCounter tokens, UsageChannel usage, TimeProvider time, Budgets.BudgetCalendar calendar, GatewayMetrics metrics)
{
    /// <summary>Starts the usage record of an authenticated request; publish it exactly once.</summary>
    /// <param name="key">The key the request authenticated with.</param>
    /// <param name="operation"><see cref="GatewayTelemetry.Chat"/> or <see cref="GatewayTelemetry.Embeddings"/>.</param>
    /// <param name="frontDoor">The front door the request came in through (<see cref="Pipeline.FrontDoorNames"/>).</param>
    public RequestMeter Start(GatewayKey key, string operation, string frontDoor) => new(key, tokens, usage, time, calendar, operation, metrics, frontDoor);
}
