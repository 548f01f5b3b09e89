using System.Collections.Concurrent;
using Dapper;
using Gateway.Core.Keys;
using Npgsql;

namespace Gateway.Core.Budgets;

/// <summary>A request's reserved worst-case cost; settle it exactly once with the real cost.</summary>
public sealed class Reservation
{
    private readonly BudgetLedger.Lease _lease;
    private int _settled;

    internal Reservation(BudgetLedger.Lease lease, decimal amount)
    {
        _lease = lease;
        Amount = amount;
    }

    public Guid LeaseId => _lease.Id;

    public decimal Amount { get; private set; }

    /// <summary>
    /// Adds <paramref name="extra"/> to the reservation, from the same lease (a usage row settles against one lease), before a
    /// further attempt after one the provider billed. False when the lease has no room: the request must not call again.
    /// </summary>
    public bool TryTopUp(decimal extra)
    {
        if (extra <= 0) return true;
        if (Volatile.Read(ref _settled) == 1 || !_lease.TryExtend(extra)) return false;
        Amount += extra;
        return true;
    }

    /// <summary>Charges <paramref name="cost"/> to the lease and frees the rest of the reservation.</summary>
    public void Settle(decimal cost)
    {
        if (Interlocked.Exchange(ref _settled, 1) == 1) return;
        _lease.Settle(Amount, cost);
    }
}

/// <summary>
/// What the ledger says of a request before it is sent: its reservation (null: the hard cap has no room), the day's spend, and,
/// when a capped key's request was refused, the most one request could still reserve under the cap (neither spent nor reserved by
/// requests in flight) to say how much smaller a request would fit.
/// </summary>
public readonly record struct BudgetCheck(Reservation? Reservation, decimal SpentToday, decimal? Left = null);

/// <summary>
/// Per-key daily spend, exact across instances without Redis. Each instance leases slices of a key's
/// remaining hard cap from PostgreSQL (one round trip per slice, not per request) and reserves each
/// request's worst-case cost locally; a request whose worst case does not fit is refused before it is
/// sent. The usage writer later moves settled costs from the lease into <c>usage_daily</c>.
/// Worst-case overshoot past the hard cap: none while real costs stay within their worst case (prompt
/// tokens are estimated with the tokenizer, so only an underestimate of the prompt can exceed it).
/// Keys with only a daily budget take no leases: their spend is re-read at most every two seconds.
/// A lease is owned by this instance (<see cref="InstanceId"/>) and carries a claim: the most this instance may still charge to
/// it. Reservations never go past the claim; <see cref="LeaseHeartbeat"/> publishes claims off the request path, and gives back
/// the unclaimed rest of a dead instance's leases (see <see cref="PublishClaimsAsync"/>).
/// </summary>
public sealed class BudgetLedger(NpgsqlDataSource db, TimeProvider time, BudgetCalendar calendar) : IDisposable
{
    private readonly ConcurrentDictionary<(Guid Key, DateOnly Day), KeyDay> _days = new();

    // Every change of a claim (the heartbeat's, and a request's raise) takes turns here, so a claim PostgreSQL holds is never
    // below what this instance may reserve: lowered in memory before PostgreSQL hears of it, raised only after.
    private readonly SemaphoreSlim _claims = new(1, 1);

    /// <summary>This process, as the owner of the leases it takes (<c>budget_leases.instance_id</c>, <c>gateway_instances.id</c>).</summary>
    public Guid InstanceId { get; } = Guid.CreateVersion7(time.GetUtcNow());

    private static readonly TimeSpan SpendRefresh = TimeSpan.FromSeconds(2);

    private readonly ConcurrentDictionary<(Guid Key, int Month), (decimal Spent, long ReadAt)> _months = new();
    private readonly ConcurrentDictionary<(Guid Key, string User, DateOnly Day), (decimal Spent, long ReadAt)> _users = new();

    /// <summary>An end user's spend through a key on a budget day, re-read at most every two seconds (soft, like monthly budgets).</summary>
    public async Task<decimal> EndUserSpentAsync(Guid key, string user, DateOnly day)
    {
        if (_users.TryGetValue((key, user, day), out var known) && time.GetElapsedTime(known.ReadAt) < SpendRefresh) return known.Spent;
        var spent = await ReadOrKnownAsync(known.Spent, async token =>
        {
            await using var connection = await db.OpenConnectionAsync(token);
            return await connection.ExecuteScalarAsync<decimal?>(
                "SELECT sum(cost_usd) FROM usage_events WHERE key_id = @key AND end_user = @user AND occurred_at >= @start AND occurred_at < @end",
                new { key, user, start = calendar.StartOf(day), end = calendar.StartOf(day.AddDays(1)), token }) ?? 0;
        });
        if (_users.Count > 100_000) _users.Clear(); // a bound on memory; entries are only a 2-second cache
        _users[(key, user, day)] = (spent, time.GetTimestamp());
        return spent;
    }

    /// <summary>
    /// The key's spend in the calendar month of <paramref name="day"/>, re-read from <c>usage_daily</c>
    /// at most every two seconds (monthly budgets are soft: no leases).
    /// </summary>
    public async Task<decimal> MonthSpentAsync(Guid key, DateOnly day)
    {
        var month = day.Year * 100 + day.Month;
        if (_months.TryGetValue((key, month), out var known) && time.GetElapsedTime(known.ReadAt) < SpendRefresh) return known.Spent;
        var first = new DateOnly(day.Year, day.Month, 1);
        var spent = await ReadOrKnownAsync(known.Spent, async token =>
        {
            await using var connection = await db.OpenConnectionAsync(token);
            return await connection.ExecuteScalarAsync<decimal?>(
                "SELECT sum(cost_usd) FROM usage_daily WHERE key_id = @key AND day >= @first::date AND day < @next::date",
                new { key, first, next = first.AddMonths(1), token }) ?? 0;
        });
        _months[(key, month)] = (spent, time.GetTimestamp());
        return spent;
    }

    /// <summary>
    /// For a key with a hard cap, reserves <paramref name="worstCase"/> on <paramref name="day"/> (the
    /// request's budget day, as its usage row will have it); for a key with only a daily budget, reports the
    /// day's spend. A null reservation with a cap means the cap has no room.
    /// </summary>
    public async Task<BudgetCheck> ReserveAsync(GatewayKey key, DateOnly day, decimal worstCase, CancellationToken ct)
    {
        var state = _days.GetOrAdd((key.Id, day), _ =>
        {
            _days.TryRemove((key.Id, day.AddDays(-1)), out KeyDay? _); // yesterday's leases are over
            return new KeyDay();
        });
        await state.Gate.WaitAsync(ct);
        try
        {
            if (key.HardCapUsd is not { } cap)
            {
                if (time.GetElapsedTime(state.SpentReadAt) > SpendRefresh || state.SpentReadAt == 0)
                {
                    state.Granted(await ReadOrKnownAsync(state.SpentEstimate, token => SpentAsync(key.Id, day, token)));
                    state.SpentReadAt = time.GetTimestamp();
                }
                return new BudgetCheck(null, state.SpentEstimate);
            }
            // A cap of 0 allows no spending at all: every request is refused, a free model's too (an admin's way to stop a key
            // spending without revoking it), and no lease is taken.
            if (cap <= 0) return new BudgetCheck(null, state.SpentEstimate, 0);
            if (state.Cap != cap)
            {
                // An admin changed the cap: slices leased under the old one serve no new request.
                state.RetireLeases();
                state.Cap = cap;
            }
            if (state.TryReserve(worstCase) is { } local) return new BudgetCheck(local, state.SpentEstimate);
            // A lease with room for it past its claim: raise the claim (one round trip, as a new slice would take, without a new slice).
            if (state.Leases.FindAll(l => l.FitsPastClaim(worstCase)) is { Count: > 0 } held)
            {
                try
                {
                    await RaiseClaimsAsync(state, held);
                }
                catch (Exception ex) when (IsUnavailable(ex))
                {
                    return new BudgetCheck(null, state.SpentEstimate, state.Free);
                }
                if (state.TryReserve(worstCase) is { } raised) return new BudgetCheck(raised, state.SpentEstimate);
            }
            // Lease a new slice: a tenth of the cap, never more than the cap allows. Leases with no request in flight
            // are closed at what they were charged first, so their unused rest is not stranded while the cap runs low.
            var idle = state.RetireIdleLeases();
            Grant grant;
            try
            {
                grant = await GrantAsync(key.Id, day, cap, worstCase, Math.Max(cap / 10, worstCase), idle);
            }
            catch (Exception ex) when (IsUnavailable(ex))
            {
                // The database is away: this instance spends only what it already leased (the cap stays exact).
                state.Restore(idle);
                return new BudgetCheck(null, state.SpentEstimate, state.Free);
            }
            state.Granted(grant.Spent);
            // Left for one request: one reservation must fit in a single lease's free part or in a new lease of what no lease holds.
            if (grant.Lease is null) return new BudgetCheck(null, state.SpentEstimate, Math.Max(Math.Max(0, grant.Available), state.Free));
            state.Leases.Add(grant.Lease);
            return new BudgetCheck(state.TryReserve(worstCase), state.SpentEstimate);
        }
        finally
        {
            state.Gate.Release();
        }
    }

    // Grants for one key and day are serialized across instances by a transaction-scoped advisory lock. The day is sent as a
    // date; the lock's key hashes it as the timestamp text it had when it was sent as one ('2026-03-01 00:00:00'), so instances
    // of the previous release, during a rolling upgrade, take the same lock.
    private const string GrantLockSql = """
        SELECT pg_advisory_xact_lock(hashtextextended(@key::text || @day::timestamp::text, 0))
        """;

    // Read under the lock, in the same transaction.
    private const string GrantReadSql = """
        SELECT coalesce((SELECT cost_usd FROM usage_daily WHERE key_id = @key AND day = @day::date), 0) AS spent,
               coalesce((SELECT sum(amount - consumed) FROM budget_leases
                         WHERE key_id = @key AND day = @day::date AND amount > consumed), 0) AS outstanding
        """;

    // A closed lease's amount becomes what was charged to it: its outstanding part is then only charges not yet written.
    private const string CloseSql = """
        UPDATE budget_leases AS l SET amount = v.charged, closed = true
        FROM unnest(@ids::uuid[], @charged::numeric[]) AS v(id, charged) WHERE l.id = v.id
        """;

    private readonly record struct Grant(Lease? Lease, decimal Spent, decimal Available);

    /// <summary>A key-day's stored spend and its leases' outstanding parts (<see cref="GrantReadSql"/>'s row).</summary>
    internal sealed record Committed(decimal Spent, decimal Outstanding);

    private async Task<decimal> SpentAsync(Guid key, DateOnly day, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.ExecuteScalarAsync<decimal?>(
            "SELECT cost_usd FROM usage_daily WHERE key_id = @key AND day = @day::date",
            new { key, day, ct }) ?? 0;
    }

    /// <summary>
    /// A spend read for a soft budget, within 2 s; while the database is unreachable, the last spend this instance
    /// knew (soft budgets go on from what is known, and the request is not held up).
    /// </summary>
    internal static async Task<decimal> ReadOrKnownAsync(decimal known, Func<CancellationToken, Task<decimal>> read)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            return Math.Max(known, await read(timeout.Token));
        }
        catch (Exception ex) when (IsUnavailable(ex))
        {
            return known;
        }
    }

    private static bool IsUnavailable(Exception ex) => ex is NpgsqlException or TimeoutException or OperationCanceledException;

    // Not cancelled by the client: a lease committed but never tracked here would strand its slice.
    private async Task<Grant> GrantAsync(Guid key, DateOnly day, decimal cap, decimal needed, decimal slice, List<Lease> idle)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var ct = timeout.Token;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        if (idle.Count > 0)
            await connection.ExecuteAsync(CloseSql,
                new { ids = idle.Select(l => l.Id).ToArray(), charged = idle.Select(l => l.Charged).ToArray(), ct }, tx);
        await connection.ExecuteAsync(GrantLockSql, new { key, day, ct }, tx);
        var (spent, outstanding) = await connection.QuerySingleAsync<Committed>(GrantReadSql, new { key, day, ct }, tx);
        var available = cap - spent - outstanding;
        if (available < needed)
        {
            await tx.CommitAsync(ct);
            foreach (var lease in idle) lease.Closed = true;
            return new Grant(null, spent, available);
        }
        var amount = Math.Min(slice, available);
        var id = Guid.CreateVersion7(time.GetUtcNow());
        // Claimed whole: it was leased for a request that is about to reserve; the next heartbeat lowers the claim to what is used.
        await connection.ExecuteAsync(
            "INSERT INTO budget_leases (id, key_id, day, amount, instance_id, claimed) VALUES (@id, @key, @day, @amount, @instance, @amount)",
            new { id, key, day, amount, instance = InstanceId, ct }, tx);
        await tx.CommitAsync(ct);
        foreach (var lease in idle) lease.Closed = true;
        return new Grant(new Lease(id, amount), spent, available - amount);
    }

    // Only leases no other instance reclaimed take a new claim: the ids returned are the ones this instance still owns.
    private const string ClaimSql = """
        UPDATE budget_leases AS l SET claimed = v.claimed
        FROM unnest(@ids::uuid[], @claims::numeric[]) AS v(id, claimed)
        WHERE l.id = v.id AND l.reclaimed_at IS NULL
        RETURNING l.id
        """;

    private static async Task<HashSet<Guid>> ClaimAsync(NpgsqlConnection connection, List<(Lease Lease, decimal Claim)> claims, CancellationToken ct) =>
        [.. await connection.QueryAsync<Guid>(ClaimSql,
            new { ids = claims.Select(c => c.Lease.Id).ToArray(), claims = claims.Select(c => c.Claim).ToArray(), ct })];

    /// <summary>Claims the whole of <paramref name="leases"/> (the caller holds the key-day's gate); one taken back by another instance retires.</summary>
    private async Task RaiseClaimsAsync(KeyDay state, List<Lease> leases)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _claims.WaitAsync(timeout.Token);
        try
        {
            await using var connection = await db.OpenConnectionAsync(timeout.Token);
            var claims = leases.ConvertAll(l => (l, l.Amount));
            var kept = await ClaimAsync(connection, claims, timeout.Token);
            foreach (var (lease, claim) in claims)
                if (kept.Contains(lease.Id)) lease.Published(claim);
                else state.Reclaimed(lease);
        }
        finally
        {
            _claims.Release();
        }
    }

    /// <summary>
    /// One heartbeat's work on this instance's leases: each open lease's claim is set to what it holds (charged plus reserved)
    /// plus headroom until the next beat (twice what was reserved on it since the last beat, and at least a quarter of the
    /// lease, so a key with a request now and then needs no round trip for it; none for a lease no request may use any more),
    /// and retired leases with nothing in flight are closed at what they were charged. A request that needs more than its
    /// lease's claim raises it at once (<see cref="ReserveAsync"/>). A lease another instance reclaimed (this one was taken for dead) is retired here.
    /// Whatever this instance can still charge to a lease is within its claim, so a reclaim that keeps claims reserved
    /// keeps the hard cap exact even if this instance was alive after all, or its journal replays its requests later.
    /// </summary>
    internal async Task PublishClaimsAsync(NpgsqlConnection connection, CancellationToken ct)
    {
        var open = new List<(KeyDay State, Lease Lease, bool InUse)>();
        foreach (var (_, state) in _days)
        {
            await state.Gate.WaitAsync(ct);
            try
            {
                foreach (var lease in state.Leases) open.Add((state, lease, true));
                foreach (var lease in state.Retired)
                    if (!lease.Closed) open.Add((state, lease, false));
            }
            finally
            {
                state.Gate.Release();
            }
        }
        // Retired leases are never used again (nor restored: a restore happens under the gate, before a close could be seen).
        var idle = open.FindAll(o => !o.InUse && o.Lease.InFlight == 0).ConvertAll(o => o.Lease);
        if (idle.Count > 0)
        {
            await connection.ExecuteAsync(CloseSql,
                new { ids = idle.Select(l => l.Id).ToArray(), charged = idle.Select(l => l.Charged).ToArray(), ct });
            foreach (var lease in idle) lease.Closed = true;
        }
        var lost = new List<(KeyDay State, Lease Lease)>();
        await _claims.WaitAsync(ct);
        try
        {
            var claims = new List<(Lease Lease, decimal Claim)>();
            var owners = new Dictionary<Lease, KeyDay>();
            foreach (var (state, lease, inUse) in open)
            {
                if (lease.Closed || lease.WasReclaimed || lease.NextClaim(inUse) is not { } claim) continue;
                claims.Add((lease, claim));
                owners[lease] = state;
            }
            if (claims.Count == 0) return;
            HashSet<Guid> kept;
            try
            {
                kept = await ClaimAsync(connection, claims, ct);
            }
            catch
            {
                foreach (var (lease, claim) in claims) lease.Unsure(claim);
                throw;
            }
            foreach (var (lease, claim) in claims)
                if (kept.Contains(lease.Id)) lease.Published(claim);
                else lost.Add((owners[lease], lease));
        }
        finally
        {
            _claims.Release();
        }
        foreach (var (state, lease) in lost)
        {
            await state.Gate.WaitAsync(ct);
            try
            {
                state.Reclaimed(lease);
            }
            finally
            {
                state.Gate.Release();
            }
        }
    }

    /// <summary>
    /// Gives back what leases did not use (their amount becomes what was charged to them), e.g. at
    /// shutdown, so other instances can lease it.
    /// </summary>
    public async Task ReleaseAsync(CancellationToken ct)
    {
        foreach (var (_, state) in _days)
        {
            await state.Gate.WaitAsync(ct);
            List<Lease> idle;
            try
            {
                idle = [.. state.Leases.Concat(state.Retired).Where(l => l.InFlight == 0)];
            }
            finally
            {
                state.Gate.Release();
            }
            if (idle.Count == 0) continue;
            await using var connection = await db.OpenConnectionAsync(ct);
            await connection.ExecuteAsync(CloseSql,
                new { ids = idle.Select(l => l.Id).ToArray(), charged = idle.Select(l => l.Charged).ToArray(), ct });
            foreach (var lease in idle) lease.Closed = true;
        }
    }

    public void Dispose() => _claims.Dispose();

    private sealed class KeyDay
    {
        private decimal _spentAtGrant;
        private decimal _chargedAtGrant;

        public SemaphoreSlim Gate { get; } = new(1, 1);
        public List<Lease> Leases { get; } = [];
        public List<Lease> Retired { get; } = [];
        public decimal? Cap { get; set; }
        public long SpentReadAt { get; set; }

        public void RetireLeases()
        {
            Retired.AddRange(Leases);
            Leases.Clear();
        }

        /// <summary>The day's spend as this instance knows it: what PostgreSQL had stored at the last read plus what this instance charged since.</summary>
        public decimal SpentEstimate => _spentAtGrant + Charged - _chargedAtGrant;

        /// <summary>The most any one of this instance's current leases holds that no request has reserved or been charged.</summary>
        public decimal Free => Leases.Count == 0 ? 0 : Leases.Max(l => l.Free);

        /// <summary>Costs settled on this instance's leases.</summary>
        public decimal Charged => Leases.Concat(Retired).Sum(l => l.Charged);

        public void Granted(decimal spent)
        {
            // Both are lower bounds of the day's spend (the database may not hold this instance's latest charges yet): keep the larger.
            _spentAtGrant = Math.Max(spent, SpentEstimate);
            _chargedAtGrant = Charged;
        }

        /// <summary>Another instance took <paramref name="lease"/> for a dead one's and lowered it to its claim: no request uses it any more.</summary>
        public void Reclaimed(Lease lease)
        {
            lease.WasReclaimed = true;
            if (Leases.Remove(lease)) Retired.Add(lease);
        }

        /// <summary>Puts leases back in use (their closing did not reach the database).</summary>
        public void Restore(List<Lease> leases)
        {
            Retired.RemoveAll(leases.Contains);
            Leases.AddRange(leases);
        }

        /// <summary>Moves the leases with no request in flight to <see cref="Retired"/> (the caller holds <see cref="Gate"/>).</summary>
        public List<Lease> RetireIdleLeases()
        {
            var idle = Leases.FindAll(l => l.InFlight == 0);
            Leases.RemoveAll(l => l.InFlight == 0);
            Retired.AddRange(idle);
            return idle;
        }

        public Reservation? TryReserve(decimal amount)
        {
            foreach (var lease in Leases)
                if (lease.TryReserve(amount)) return new Reservation(lease, amount);
            return null;
        }
    }

    internal sealed class Lease
    {
        private readonly Lock _lock = new();
        private readonly Guid _id;
        private readonly decimal _amount;
        private decimal _reserved;
        private decimal _charged;
        private int _inFlight;
        // What this instance may have reserved and charged on the lease at most: never above the claim PostgreSQL holds
        // (_published), since only the heartbeat and a raise change either, one at a time (BudgetLedger._claims).
        private decimal _ceiling;
        private decimal _published;
        private decimal _reservedSinceClaim;

        public Lease(Guid id, decimal amount)
        {
            _id = id;
            _amount = _ceiling = _published = amount;
        }

        public Guid Id => _id;
        public decimal Amount => _amount;
        public int InFlight { get { lock (_lock) return _inFlight; } }
        public decimal Charged { get { lock (_lock) return _charged; } }
        /// <summary>What no request reserved or was charged, past the claim too (raising the claim gives that).</summary>
        public decimal Free { get { lock (_lock) return WasReclaimed ? 0 : Math.Max(0, _amount - _charged - _reserved); } }

        /// <summary>Closed in PostgreSQL at what it was charged (retired with nothing in flight).</summary>
        public volatile bool Closed;

        /// <summary>Another instance lowered it to its claim, taking this instance for dead.</summary>
        public volatile bool WasReclaimed;

        public bool TryReserve(decimal worstCase)
        {
            lock (_lock)
            {
                if (_ceiling - _charged - _reserved < worstCase) return false;
                _reserved += worstCase;
                _inFlight++;
                _reservedSinceClaim += worstCase;
                return true;
            }
        }

        /// <summary>
        /// Reserves <paramref name="extra"/> more for a request already in flight on this lease (a top-up), within what this
        /// instance may use of it (its claim).
        /// </summary>
        public bool TryExtend(decimal extra)
        {
            lock (_lock)
            {
                if (_ceiling - _charged - _reserved < extra) return false;
                _reserved += extra;
                _reservedSinceClaim += extra;
                return true;
            }
        }

        /// <summary>Whether the lease holds room for <paramref name="worstCase"/> that only its claim keeps from it.</summary>
        public bool FitsPastClaim(decimal worstCase)
        {
            lock (_lock) return !WasReclaimed && _ceiling < _amount && _amount - _charged - _reserved >= worstCase;
        }

        /// <summary>
        /// The claim to publish now (null: the one PostgreSQL holds stands): what is held plus the headroom. A lower claim
        /// applies here at once; a higher one only once PostgreSQL has it (<see cref="Published"/>).
        /// </summary>
        public decimal? NextClaim(bool inUse)
        {
            lock (_lock)
            {
                var headroom = inUse ? Math.Max(2 * _reservedSinceClaim, _amount / 4) : 0;
                _reservedSinceClaim = 0;
                var claim = Math.Min(_amount, _charged + _reserved + headroom);
                if (claim == _published)
                {
                    _ceiling = claim; // PostgreSQL holds at least this much (a write that failed was a lower one)
                    return null;
                }
                if (claim < _ceiling) _ceiling = claim;
                return claim;
            }
        }

        /// <summary>
        /// A write of <paramref name="claim"/> failed, perhaps after PostgreSQL committed it: from now on the claim it holds is
        /// taken to be the lower of the two.
        /// </summary>
        public void Unsure(decimal claim)
        {
            lock (_lock) _published = Math.Min(_published, claim);
        }

        /// <summary>PostgreSQL holds <paramref name="claim"/> for the lease: reservations may use all of it.</summary>
        public void Published(decimal claim)
        {
            lock (_lock)
            {
                _published = claim;
                _ceiling = claim;
            }
        }

        public void Settle(decimal reserved, decimal cost)
        {
            lock (_lock)
            {
                _reserved -= reserved;
                _charged += cost;
                _inFlight--;
            }
        }
    }
}
