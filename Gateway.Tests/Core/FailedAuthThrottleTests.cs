using System.Net;
using Gateway.Core.Limits;

namespace Gateway.Tests.Core;

/// <summary>What counts as one client address for the failed-authentication throttle.</summary>
public sealed class FailedAuthThrottleTests
{
    [Fact]
    public void IPv6Client_NewAddressesInItsSlash64_DoNotEscapeTheLimit_AnotherSlash64Does()
    {
        using var throttle = new FailedAuthThrottle(2, TimeSpan.FromMinutes(1));

        throttle.RecordFailure(IPAddress.Parse("2001:db8:1:2::1"), out _);
        throttle.RecordFailure(IPAddress.Parse("2001:db8:1:2:abcd::7"), out _);

        Assert.True(throttle.IsRefused(IPAddress.Parse("2001:db8:1:2:ffff:ffff:ffff:ffff"), out var retryAfter));
        Assert.True(retryAfter > TimeSpan.Zero);
        Assert.False(throttle.IsRefused(IPAddress.Parse("2001:db8:1:3::1"), out _));
    }

    [Fact]
    public void IPv4Client_CountsTheSameWhetherOrNotMappedIntoIPv6_AndAloneInItsNetwork()
    {
        using var throttle = new FailedAuthThrottle(2, TimeSpan.FromMinutes(1));

        throttle.RecordFailure(IPAddress.Parse("192.0.2.10"), out _);
        var second = throttle.RecordFailure(IPAddress.Parse("::ffff:192.0.2.10"), out _);
        var third = throttle.RecordFailure(IPAddress.Parse("192.0.2.10"), out var retryAfter);

        Assert.True(second);
        Assert.False(third);
        Assert.True(retryAfter > TimeSpan.Zero);
        Assert.True(throttle.IsRefused(IPAddress.Parse("::ffff:192.0.2.10"), out _));
        Assert.False(throttle.IsRefused(IPAddress.Parse("192.0.2.11"), out _));
    }
}
