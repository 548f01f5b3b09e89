namespace Gateway.Tests.Fixtures;

/// <summary>
/// Waits for something that happens in the background (a NOTIFY reaching an instance, the usage writer storing a
/// row, a cache entry expiring) by polling it, with a generous bound: a loaded CI machine can be seconds late, and a
/// test waits for the event, not for a guessed time. A behaviour that never happens still fails at the bound.
/// </summary>
public static class Eventually
{
    /// <summary>The default bound: far beyond any healthy delay (milliseconds), short enough for a broken run.</summary>
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    private static readonly TimeSpan Pause = TimeSpan.FromMilliseconds(25);

    /// <summary>Polls until <paramref name="condition"/> holds; throws <see cref="TimeoutException"/> at the bound.</summary>
    public static async Task TrueAsync(Func<Task<bool>> condition, TimeSpan? bound = null, string? what = null)
    {
        var deadline = Environment.TickCount64 + (long)(bound ?? Bound).TotalMilliseconds;
        while (!await condition())
        {
            if (Environment.TickCount64 > deadline)
                throw new TimeoutException($"{what ?? "The condition"} did not hold within {(bound ?? Bound).TotalSeconds:0} s.");
            await Task.Delay(Pause);
        }
    }

    /// <inheritdoc cref="TrueAsync(Func{Task{bool}}, TimeSpan?, string?)"/>
    public static Task TrueAsync(Func<bool> condition, TimeSpan? bound = null, string? what = null) =>
        TrueAsync(() => Task.FromResult(condition()), bound, what);

    /// <summary>
    /// Repeats <paramref name="act"/> until <paramref name="done"/> holds for its result or the bound passes, and
    /// returns the last result either way, for the test to assert on (its failure then shows what was seen).
    /// </summary>
    public static async Task<T> UntilAsync<T>(Func<Task<T>> act, Func<T, bool> done, TimeSpan? bound = null, TimeSpan? pause = null)
    {
        var deadline = Environment.TickCount64 + (long)(bound ?? Bound).TotalMilliseconds;
        while (true)
        {
            var result = await act();
            if (done(result) || Environment.TickCount64 > deadline) return result;
            await Task.Delay(pause ?? Pause);
        }
    }
}
