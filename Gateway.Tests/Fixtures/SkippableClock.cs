namespace Gateway.Tests.Fixtures;

/// <summary>
/// The system clock, except that a test can move its monotonic timestamps forward: an "at most every 2 s" cache
/// (e.g. a budget's spend re-read) expires at once instead of after a sleep a busy machine may overrun. Dates and
/// timers stay real, so the rest of the host behaves as usual.
/// </summary>
public sealed class SkippableClock : TimeProvider
{
    private long _skipped;

    public void Skip(TimeSpan by) => Interlocked.Add(ref _skipped, (long)(by.TotalSeconds * TimestampFrequency));

    public override long TimestampFrequency => System.TimestampFrequency;

    public override long GetTimestamp() => System.GetTimestamp() + Interlocked.Read(ref _skipped);
}
