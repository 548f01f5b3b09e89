namespace Gateway.Admin.Components.Shared;

/// <summary>
/// The data loads of one page, ended with it. <see cref="LatestAsync"/> runs a load that replaces the page's previous one
/// (a filter change cancels the queries of the filter before); <see cref="AlongsideAsync"/> runs work that only the page's
/// end cancels. The page's <c>Dispose</c> disposes this, which cancels whatever still runs. A cancelled load ends quietly:
/// its <see cref="OperationCanceledException"/> stays here, as one reaching the circuit would end it (the page freezes).
/// </summary>
/// <remarks>
/// <para>A load's token source is disposed only by that load, after it ended, so no load ever reads a disposed source's
/// token (disposing it while an older load still ran was the bug this replaces). Blazor runs a circuit's component code one
/// piece at a time, Dispose included, so nothing here needs a lock.</para>
/// <para>A query can complete just after its load was cancelled, so a load calls <c>ct.ThrowIfCancellationRequested()</c>
/// after each await before it writes the page's state: a superseded load never overwrites a newer one's, and nothing is
/// written or rendered once the page is gone.</para>
/// </remarks>
public sealed class LoadScope : IDisposable
{
    private readonly CancellationTokenSource _page = new();
    private CancellationTokenSource? _latest;

    /// <summary>Whether the latest load still runs (for a progress indicator).</summary>
    public bool IsLoading => _latest is not null;

    /// <summary>Runs <paramref name="load"/> after cancelling the previous latest load; it is cancelled in turn by the next one or the page's end.</summary>
    public async Task LatestAsync(Func<CancellationToken, Task> load)
    {
        if (_page.IsCancellationRequested) return;
        _latest?.Cancel();
        using var mine = CancellationTokenSource.CreateLinkedTokenSource(_page.Token);
        _latest = mine;
        try
        {
            await load(mine.Token);
        }
        catch (OperationCanceledException) when (mine.IsCancellationRequested)
        {
            // A newer load took over, or the page went away.
        }
        finally
        {
            if (_latest == mine) _latest = null;
        }
    }

    /// <summary>Runs <paramref name="work"/> beside the page's other loads (a connection test); only the page's end cancels it.</summary>
    public async Task AlongsideAsync(Func<CancellationToken, Task> work)
    {
        if (_page.IsCancellationRequested) return;
        try
        {
            await work(_page.Token);
        }
        catch (OperationCanceledException) when (_page.IsCancellationRequested)
        {
            // The page went away.
        }
    }

    /// <summary>Cancels every load still running; later calls run nothing.</summary>
    public void Dispose()
    {
        if (_page.IsCancellationRequested) return;
        _latest = null;
        _page.Cancel();
        _page.Dispose();
    }
}
