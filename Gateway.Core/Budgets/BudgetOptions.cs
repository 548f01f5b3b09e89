using System.ComponentModel.DataAnnotations;

namespace Gateway.Core.Budgets;

/// <summary>Settings for hard-cap leases across instances (section <c>Gateway:Budgets</c>).</summary>
public sealed class BudgetOptions
{
    public const string SectionName = "Gateway:Budgets";

    /// <summary>How often an instance tells the others it is alive and publishes its leases' claims (off the request path).</summary>
    [Range(1, 300)]
    public int LeaseHeartbeatSeconds { get; set; } = 5;

    /// <summary>
    /// How long an instance's heartbeat must stand still (as another instance's own clock measures it) before that instance
    /// takes it for gone and gives back the unclaimed rest of its leases. Unset: the upstream timeout
    /// (<c>Gateway:Upstream:TimeoutSeconds</c>) plus 60 s, so an instance that is only cut off from the database has had time to
    /// finish every request it started. At least three heartbeats.
    /// </summary>
    [Range(3, 86_400)]
    public int? LeaseReclaimSeconds { get; set; }

    /// <summary>The reclaim bound in force with <paramref name="upstream"/>'s timeout.</summary>
    public TimeSpan ReclaimAfter(Providers.UpstreamOptions upstream) => TimeSpan.FromSeconds(LeaseReclaimSeconds ?? upstream.TimeoutSeconds + 60);
}
