namespace Gateway.Core.Limits;

/// <summary>
/// How many API instances are alive on this database, this one included: those whose heartbeat row in <c>gateway_instances</c>
/// moved within the last three heartbeats (<see cref="Budgets.LeaseHeartbeat"/> counts them, off the request path). Without Redis,
/// each instance enforces a key's rate limits divided by this number, so that together they stay near the limit.
/// </summary>
public sealed class LiveInstances
{
    private volatile int _count = 1;

    /// <summary>At least 1 (this instance), also before the first count.</summary>
    public int Count => _count;

    internal void Update(int count) => _count = Math.Max(1, count);
}
