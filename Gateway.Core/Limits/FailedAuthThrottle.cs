using System.Net;
using System.Net.Sockets;
using System.Threading.RateLimiting;

namespace Gateway.Core.Limits;

/// <summary>
/// Failed authentications per client address (the admin API's bearer tokens, the admin app's sign-in form): once an
/// address has failed <c>failures</c> times within the sliding <c>window</c>, its next attempts are refused before any
/// credential is looked at, until old failures slide out. Successes cost nothing. A System.Threading.RateLimiting
/// partitioned limiter (one sliding window per address, idle ones dropped by the limiter itself); in memory, per process.
/// IPv6 addresses count per /64, since one client usually holds a whole /64.
/// </summary>
public sealed class FailedAuthThrottle : IDisposable
{
    private readonly PartitionedRateLimiter<IPAddress> _failures;

    public FailedAuthThrottle(int failures, TimeSpan window)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(failures, 1);
        var options = new SlidingWindowRateLimiterOptions
        {
            PermitLimit = failures,
            Window = window,
            SegmentsPerWindow = 15,
            QueueLimit = 0,
        };
        _failures = PartitionedRateLimiter.Create<IPAddress, IPAddress>(
            address => RateLimitPartition.GetSlidingWindowLimiter(address, _ => options));
    }

    /// <summary>True when <paramref name="address"/> has used up its failures; <paramref name="retryAfter"/> says when to try again.</summary>
    public bool IsRefused(IPAddress? address, out TimeSpan retryAfter)
    {
        // Zero permits: asks whether any failure is left without spending one.
        using var lease = _failures.AttemptAcquire(PartitionOf(address), 0);
        retryAfter = lease.IsAcquired ? TimeSpan.Zero : RetryAfterOf(lease);
        return !lease.IsAcquired;
    }

    /// <summary>Counts a failed attempt; false (with <paramref name="retryAfter"/>) when it was one too many.</summary>
    public bool RecordFailure(IPAddress? address, out TimeSpan retryAfter)
    {
        using var lease = _failures.AttemptAcquire(PartitionOf(address));
        retryAfter = lease.IsAcquired ? TimeSpan.Zero : RetryAfterOf(lease);
        return lease.IsAcquired;
    }

    /// <summary>The unit an address counts in: IPv4 (also when mapped into IPv6) as is, IPv6 by its /64 prefix.</summary>
    public static IPAddress PartitionOf(IPAddress? address)
    {
        if (address is null) return IPAddress.None;
        if (address.IsIPv4MappedToIPv6) return address.MapToIPv4();
        if (address.AddressFamily != AddressFamily.InterNetworkV6) return address;
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return new IPAddress(bytes);
    }

    // A sliding window frees failures segment by segment (a fifteenth of the window each).
    private static TimeSpan RetryAfterOf(RateLimitLease lease) =>
        lease.TryGetMetadata(MetadataName.RetryAfter, out var after) && after > TimeSpan.Zero ? after : TimeSpan.FromSeconds(1);

    public void Dispose() => _failures.Dispose();
}
