using Dapper;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace Gateway.Core.Metering;

/// <summary>
/// Drains the <see cref="UsageChannel"/> into PostgreSQL: a batch per transaction, binary COPY into a
/// staging table, then one INSERT … ON CONFLICT DO NOTHING (idempotent on request id) whose inserted rows
/// update the daily aggregates (<c>usage_daily</c>, <c>usage_daily_models</c>) in the same transaction. A
/// failed batch is retried, never dropped.
/// On shutdown it runs after the web server stopped, so every in-flight request's record is flushed.
/// </summary>
public sealed partial class UsageWriter(
    UsageChannel channel, NpgsqlDataSource db, Persistence.DirectDatabase direct, IOptions<MeteringOptions> options, TimeProvider time,
    ILogger<UsageWriter> logger, GatewayMetrics metrics)
    : IHostedService, IDisposable
{
    private readonly CancellationTokenSource _abort = new();
    private readonly HashSet<DateOnly> _partitions = [];
    private Task _loop = Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _loop = Task.Run(() => RunAsync(_abort.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Runs after the web server stopped. Requests it aborted may still be finishing, so the channel
    /// is closed only once it stayed empty for a moment; then everything queued is written. This has
    /// its own time limit (<see cref="MeteringOptions.FlushTimeoutSeconds"/>), not the host's
    /// shutdown budget, which the web server's drain may have used up.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        var limit = TimeSpan.FromSeconds(options.Value.FlushTimeoutSeconds);
        var started = time.GetTimestamp();
        try
        {
            var quietSince = time.GetTimestamp();
            while (time.GetElapsedTime(quietSince) < TimeSpan.FromMilliseconds(250) && time.GetElapsedTime(started) < limit)
            {
                if (channel.Reader.Count > 0) quietSince = time.GetTimestamp();
                await Task.Delay(TimeSpan.FromMilliseconds(25), time, CancellationToken.None);
            }
            channel.Complete();
            await _loop.WaitAsync(limit - time.GetElapsedTime(started) is { Ticks: > 0 } left ? left : TimeSpan.Zero, time, CancellationToken.None);
        }
        catch (TimeoutException)
        {
            await _abort.CancelAsync();
            Log.ShutdownUnflushed(logger, channel.Reader.Count);
        }
    }

    private async Task RunAsync(CancellationToken ct)
    {
        var batch = new List<UsageRecord>(options.Value.BatchSize);
        var journal = channel.Journal;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                bool open;
                using (var wake = CancellationTokenSource.CreateLinkedTokenSource(ct))
                {
                    // Wakes at least every second, to replay journal files (an earlier run's, or records the queue had no room for).
                    wake.CancelAfter(TimeSpan.FromSeconds(1));
                    try
                    {
                        open = await channel.Reader.WaitToReadAsync(wake.Token);
                    }
                    catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                    {
                        open = true;
                    }
                }
                if (options.Value.FlushIntervalMilliseconds > 0 && channel.Reader.Count is > 0 and var waiting && waiting < options.Value.BatchSize)
                    await Task.Delay(TimeSpan.FromMilliseconds(options.Value.FlushIntervalMilliseconds), time, ct);
                while (batch.Count < options.Value.BatchSize && channel.Reader.TryRead(out var record))
                    batch.Add(record);
                if (batch.Count > 0)
                {
                    await WriteWithRetryAsync(batch, ct);
                    if (journal is not null) foreach (var record in batch) journal.Written(record);
                    batch.Clear();
                }
                if (journal is not null) await ReplayAsync(journal, ct);
                if (!open) return; // completed and drained
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return; // flush time ran out; StopAsync logged what was left (the journal keeps it for the next start)
            }
        }
    }

    /// <summary>
    /// Writes journal files that may hold records PostgreSQL lacks (idempotent on request id), then removes them. An in-flight
    /// line becomes an interrupted row only when an earlier process left it and no file holds that request's final record (a
    /// final record already in PostgreSQL wins too: same request id and time); this process's own are requests still running.
    /// </summary>
    private async Task ReplayAsync(UsageJournal journal, CancellationToken ct)
    {
        var segments = journal.ToReplay();
        if (segments.Count == 0) return;
        var finished = new HashSet<Guid>();
        foreach (var segment in segments)
            if (segment.LeftByEarlierRun)
                foreach (var record in journal.Read(segment))
                    if (!record.InFlight) finished.Add(record.RequestId);
        foreach (var segment in segments)
        {
            var replayed = 0;
            var batch = new List<UsageRecord>(options.Value.BatchSize);
            foreach (var record in journal.Read(segment))
            {
                if (record.InFlight && (!segment.LeftByEarlierRun || finished.Contains(record.RequestId))) continue;
                batch.Add(record);
                if (batch.Count < options.Value.BatchSize) continue;
                await WriteWithRetryAsync(batch, ct);
                replayed += batch.Count;
                batch.Clear();
            }
            if (batch.Count > 0) await WriteWithRetryAsync(batch, ct);
            replayed += batch.Count;
            journal.Replayed(segment);
            Log.Replayed(logger, segment.Path, replayed);
        }
    }

    /// <summary>
    /// Writes a batch, waiting out database outages (retries with backoff, never a drop). If PostgreSQL
    /// refuses the batch's data, or something unexpected fails, the records are written one by one so a
    /// single bad record cannot block the rest; a record refused on its own is logged in full and skipped.
    /// </summary>
    private async Task WriteWithRetryAsync(List<UsageRecord> batch, CancellationToken ct)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            try
            {
                var started = time.GetTimestamp();
                await WriteBatchAsync(batch, ct);
                metrics.Flushed(batch.Count, time.GetElapsedTime(started).TotalSeconds);
                return;
            }
            catch (Exception ex) when (IsOutage(ex, ct))
            {
                Log.BatchFailed(logger, batch.Count, delay.TotalMilliseconds, ex.Message);
                await Task.Delay(delay, time, ct);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
            catch (Exception ex) when (ex is not OperationCanceledException && batch.Count > 1)
            {
                Log.BatchRejected(logger, batch.Count, (ex as PostgresException)?.SqlState ?? ex.GetType().Name);
                foreach (var record in batch) await WriteWithRetryAsync([record], ct);
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                var r = batch[0];
                Log.RecordRejected(logger, r.RequestId, r.KeyId, r.OccurredAt, r.Status, r.PromptTokens, r.CompletionTokens, r.CostUsd,
                    (ex as PostgresException)?.SqlState ?? ex.GetType().Name);
                return;
            }
        }
    }

    // The database is unreachable or busy (retry), as opposed to refusing what we sent (don't).
    private static bool IsOutage(Exception ex, CancellationToken ct) => !ct.IsCancellationRequested && ex switch
    {
        PostgresException pg => pg.SqlState.StartsWith("08", StringComparison.Ordinal) || pg.SqlState.StartsWith("53", StringComparison.Ordinal)
                                || pg.SqlState.StartsWith("57", StringComparison.Ordinal) || pg.SqlState is PostgresErrorCodes.DeadlockDetected
                                    or PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.LockNotAvailable,
        NpgsqlException or TimeoutException or IOException or System.Net.Sockets.SocketException => true,
        _ => false,
    };

    private const string StageSql = """
        CREATE TEMP TABLE IF NOT EXISTS usage_stage (LIKE usage_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
        """;

    // Behind a pooler in transaction mode a session's temp table stays on a server connection that outlives this process: after
    // an upgrade added a column to usage_events, the old one would refuse the new COPY. So there the table lives one transaction
    // (under another name, which no session-long table left on that server connection can hold).
    private const string StagePerTransactionSql = """
        CREATE TEMP TABLE usage_stage_tx (LIKE usage_events INCLUDING DEFAULTS) ON COMMIT DROP
        """;

    private static readonly string CopyPerTransactionSql = CopySql.Replace("COPY usage_stage ", "COPY usage_stage_tx ", StringComparison.Ordinal);
    private static readonly string MergePerTransactionSql = MergeSql.Replace("FROM usage_stage", "FROM usage_stage_tx", StringComparison.Ordinal);

    private const string CopySql = """
        COPY usage_stage (request_id, occurred_at, key_id, end_user, asked_model, served_model, provider,
            prompt_tokens, completion_tokens, cached_tokens, usage_estimated, input_price_per_mtok,
            output_price_per_mtok, cached_input_price_per_mtok, cost_usd, latency_ms, ttft_ms, status,
            error_kind, streamed, attempts, fallback, attempt_trail, routing_rule, lease_id, downgraded_from, cache_hit, day,
            injection_flags, cache_write_tokens, cache_write_1h_tokens, cache_write_price_per_mtok, cache_write_1h_price_per_mtok, front_door)
            FROM STDIN (FORMAT BINARY)
        """;

    // Only rows actually inserted (not replays of a request id) count towards the daily aggregates. Each upsert
    // takes its rows in key order, one lock order for every instance, so concurrent batches cannot deadlock.
    private const string MergeSql = """
        WITH inserted AS (
            INSERT INTO usage_events SELECT * FROM usage_stage
            ON CONFLICT DO NOTHING
            RETURNING key_id, day, provider, served_model, asked_model, status, fallback, prompt_tokens, completion_tokens, cached_tokens,
                      cache_write_tokens, cache_write_1h_tokens, cost_usd, lease_id),
        -- A settled cost leaves its lease's outstanding part as it enters usage_daily: budgets stay exact.
        leases AS (
            UPDATE budget_leases AS l SET consumed = l.consumed + s.cost
            FROM (SELECT lease_id, sum(cost_usd) AS cost FROM inserted WHERE lease_id IS NOT NULL GROUP BY lease_id ORDER BY lease_id) AS s
            WHERE l.id = s.lease_id),
        -- Grouped as the model and provider reports and the FOCUS export show them.
        models AS (
            INSERT INTO usage_daily_models AS m (day, key_id, provider, model, requests, errors, fallbacks, prompt_tokens, completion_tokens, cached_tokens,
                                                 cache_write_tokens, cache_write_1h_tokens, cost_usd)
            SELECT day, key_id, coalesce(provider, '(none)'), coalesce(served_model, asked_model, '(none)'), count(*), count(*) FILTER (WHERE status >= 400),
                   count(*) FILTER (WHERE fallback), sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens), sum(cache_write_tokens),
                   sum(cache_write_1h_tokens), sum(cost_usd)
            FROM inserted
            GROUP BY 1, 2, 3, 4
            ORDER BY 1, 2, 3, 4
            ON CONFLICT (day, key_id, provider, model) DO UPDATE SET
                requests = m.requests + excluded.requests,
                errors = m.errors + excluded.errors,
                fallbacks = m.fallbacks + excluded.fallbacks,
                prompt_tokens = m.prompt_tokens + excluded.prompt_tokens,
                completion_tokens = m.completion_tokens + excluded.completion_tokens,
                cached_tokens = m.cached_tokens + excluded.cached_tokens,
                cache_write_tokens = m.cache_write_tokens + excluded.cache_write_tokens,
                cache_write_1h_tokens = m.cache_write_1h_tokens + excluded.cache_write_1h_tokens,
                cost_usd = m.cost_usd + excluded.cost_usd)
        INSERT INTO usage_daily AS d (key_id, day, requests, errors, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens,
                                      cache_write_1h_tokens, cost_usd)
        SELECT key_id, day, count(*), count(*) FILTER (WHERE status >= 400),
               sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens), sum(cache_write_tokens), sum(cache_write_1h_tokens), sum(cost_usd)
        FROM inserted
        GROUP BY 1, 2
        ORDER BY 1, 2
        ON CONFLICT (key_id, day) DO UPDATE SET
            requests = d.requests + excluded.requests,
            errors = d.errors + excluded.errors,
            prompt_tokens = d.prompt_tokens + excluded.prompt_tokens,
            completion_tokens = d.completion_tokens + excluded.completion_tokens,
            cached_tokens = d.cached_tokens + excluded.cached_tokens,
            cache_write_tokens = d.cache_write_tokens + excluded.cache_write_tokens,
            cache_write_1h_tokens = d.cache_write_1h_tokens + excluded.cache_write_1h_tokens,
            cost_usd = d.cost_usd + excluded.cost_usd
        """;

    private async Task WriteBatchAsync(List<UsageRecord> batch, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await EnsurePartitionsAsync(connection, batch, ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await connection.ExecuteAsync(direct.PooledSeparately ? StagePerTransactionSql : StageSql, ct, tx);
        await using (var copy = await connection.BeginBinaryImportAsync(direct.PooledSeparately ? CopyPerTransactionSql : CopySql, ct))
        {
            foreach (var r in batch)
            {
                await copy.StartRowAsync(ct);
                await copy.WriteAsync(r.RequestId, NpgsqlDbType.Uuid, ct);
                await copy.WriteAsync(r.OccurredAt, NpgsqlDbType.TimestampTz, ct);
                await copy.WriteAsync(r.KeyId, NpgsqlDbType.Uuid, ct);
                await WriteTextAsync(copy, r.EndUser, ct);
                await WriteTextAsync(copy, r.AskedModel, ct);
                await WriteTextAsync(copy, r.ServedModel, ct);
                await WriteTextAsync(copy, r.Provider, ct);
                await copy.WriteAsync(r.PromptTokens, NpgsqlDbType.Integer, ct);
                await copy.WriteAsync(r.CompletionTokens, NpgsqlDbType.Integer, ct);
                await copy.WriteAsync(r.CachedTokens, NpgsqlDbType.Integer, ct);
                await copy.WriteAsync(r.UsageEstimated, NpgsqlDbType.Boolean, ct);
                await WriteNumericAsync(copy, r.InputPricePerMTok, ct);
                await WriteNumericAsync(copy, r.OutputPricePerMTok, ct);
                await WriteNumericAsync(copy, r.CachedInputPricePerMTok, ct);
                await copy.WriteAsync(r.CostUsd, NpgsqlDbType.Numeric, ct);
                await copy.WriteAsync(r.LatencyMs, NpgsqlDbType.Integer, ct);
                if (r.TtftMs is { } ttft) await copy.WriteAsync(ttft, NpgsqlDbType.Integer, ct);
                else await copy.WriteNullAsync(ct);
                await copy.WriteAsync(r.Status, NpgsqlDbType.Smallint, ct);
                await WriteTextAsync(copy, r.ErrorKind, ct);
                await copy.WriteAsync(r.Streamed, NpgsqlDbType.Boolean, ct);
                await copy.WriteAsync(r.Attempts, NpgsqlDbType.Smallint, ct);
                await copy.WriteAsync(r.Fallback, NpgsqlDbType.Boolean, ct);
                if (r.AttemptTrail is { } trail) await copy.WriteAsync(trail, NpgsqlDbType.Jsonb, ct);
                else await copy.WriteNullAsync(ct);
                await WriteTextAsync(copy, r.RoutingRule, ct);
                if (r.LeaseId is { } lease) await copy.WriteAsync(lease, NpgsqlDbType.Uuid, ct);
                else await copy.WriteNullAsync(ct);
                await WriteTextAsync(copy, r.DowngradedFrom, ct);
                await copy.WriteAsync(r.CacheHit, NpgsqlDbType.Boolean, ct);
                await copy.WriteAsync(r.Day, NpgsqlDbType.Date, ct);
                if (r.InjectionFlags is { } flags) await copy.WriteAsync(flags.ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Text, ct);
                else await copy.WriteNullAsync(ct);
                await copy.WriteAsync(r.CacheWriteTokens, NpgsqlDbType.Integer, ct);
                await copy.WriteAsync(r.CacheWrite1hTokens, NpgsqlDbType.Integer, ct);
                await WriteNumericAsync(copy, r.CacheWritePricePerMTok, ct);
                await WriteNumericAsync(copy, r.CacheWrite1hPricePerMTok, ct);
                await WriteTextAsync(copy, r.FrontDoor, ct);
            }
            await copy.CompleteAsync(ct);
        }
        await connection.ExecuteAsync(direct.PooledSeparately ? MergePerTransactionSql : MergeSql, ct, tx);
        await tx.CommitAsync(ct);
    }

    // PostgreSQL text cannot hold NUL; a client can put one in `user` or `model`, and the row must still be stored.
    private static Task WriteTextAsync(NpgsqlBinaryImporter copy, string? value, CancellationToken ct) =>
        value is null ? copy.WriteNullAsync(ct) : copy.WriteAsync(value.Replace('\0', '\uFFFD'), NpgsqlDbType.Text, ct);

    private static Task WriteNumericAsync(NpgsqlBinaryImporter copy, decimal? value, CancellationToken ct) =>
        value is { } v ? copy.WriteAsync(v, NpgsqlDbType.Numeric, ct) : copy.WriteNullAsync(ct);

    private async Task EnsurePartitionsAsync(NpgsqlConnection connection, List<UsageRecord> batch, CancellationToken ct)
    {
        foreach (var record in batch)
        {
            var day = DateOnly.FromDateTime(record.OccurredAt.UtcDateTime);
            if (_partitions.Contains(day)) continue;
            try
            {
                await connection.ExecuteAsync("SELECT ensure_usage_partition(@day::date)", new { day, ct });
            }
            catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.DuplicateTable or PostgresErrorCodes.CheckViolation
                                                   or PostgresErrorCodes.UniqueViolation)
            {
                // Another instance made it first, or the default partition already holds that day's rows
                // (they stay there; nothing is lost).
                Log.PartitionNotCreated(logger, day, ex.SqlState);
            }
            _partitions.Add(day);
        }
    }

    public void Dispose() => _abort.Dispose();

    private static partial class Log
    {
        [LoggerMessage(EventId = 1307, Level = LogLevel.Information, Message = "Replayed usage journal {Path}: {Records} records (already stored ones skipped)")]
        public static partial void Replayed(ILogger logger, string path, int records);

        [LoggerMessage(EventId = 1301, Level = LogLevel.Warning, Message = "Writing {Count} usage records failed ({Error}); retrying in {DelayMs} ms")]
        public static partial void BatchFailed(ILogger logger, int count, double delayMs, string error);

        [LoggerMessage(EventId = 1302, Level = LogLevel.Warning, Message = "A batch of {Count} usage records failed ({Reason}); writing them one by one")]
        public static partial void BatchRejected(ILogger logger, int count, string reason);

        [LoggerMessage(EventId = 1303, Level = LogLevel.Error, Message = "Usage record refused ({Reason}), not stored: request {RequestId}, key {KeyId}, at {OccurredAt}, status {Status}, tokens {PromptTokens}/{CompletionTokens}, cost {CostUsd} USD")]
        public static partial void RecordRejected(ILogger logger, Guid requestId, Guid keyId, DateTimeOffset occurredAt, short status,
            int promptTokens, int completionTokens, decimal costUsd, string reason);

        [LoggerMessage(EventId = 1304, Level = LogLevel.Error, Message = "Metering flush time ran out with {Count} usage records not yet written")]
        public static partial void ShutdownUnflushed(ILogger logger, int count);

        [LoggerMessage(EventId = 1305, Level = LogLevel.Information, Message = "Partition for {Day} not created ({SqlState})")]
        public static partial void PartitionNotCreated(ILogger logger, DateOnly day, string sqlState);
    }
}
