using System.Data;
using System.Diagnostics;
using Dapper;
using Npgsql;

namespace Micro;

/// <summary>
/// Grows <c>usage_events</c> to a number of rows with one <c>INSERT … SELECT generate_series</c>, so the writer can be measured
/// on a table that has been in service for a while. The rows are made up but shaped like real ones (the
/// <see cref="UsageWorkload"/>'s keys and models at their prices, spread over the last <c>days</c> days, so over that many day
/// partitions and today's; with 0 days all in today's, the partition the gateway's own rows go to).
/// Only <c>usage_events</c> is filled: <c>usage_daily</c>, <c>usage_daily_models</c> and <c>budget_leases</c> are NOT made
/// consistent with these rows, which the writer's cost does not depend on; do not read reports from a grown database.
/// </summary>
internal static class UsageFiller
{
    private const string PartitionsSql = """
        SELECT ensure_usage_partition(d::date)
        FROM generate_series((now() AT TIME ZONE 'UTC')::date - @days, (now() AT TIME ZONE 'UTC')::date, interval '1 day') AS d
        """;

    // Random values come from a subquery over generate_series, so random() is drawn per row. Statuses: 1% 429, 2% 502.
    private const string FillSql = """
        INSERT INTO usage_events (request_id, occurred_at, key_id, end_user, asked_model, served_model, provider, prompt_tokens,
            completion_tokens, cached_tokens, input_price_per_mtok, output_price_per_mtok, cached_input_price_per_mtok, cost_usd,
            latency_ms, ttft_ms, status, error_kind, streamed, day)
        SELECT gen_random_uuid(), e.at, e.key_id, e.end_user, m.alias, m.upstream, m.provider, e.prompt,
               e.completion, e.cached, m.input, m.output, m.cached_input,
               ((e.prompt - e.cached) * m.input + e.cached * m.cached_input + e.completion * m.output) / 1000000,
               e.latency, CASE WHEN e.streamed THEN e.latency / 5 END, e.status,
               CASE e.status WHEN 429 THEN 'rate_limit_exceeded' WHEN 502 THEN 'upstream_error' END,
               e.streamed, (e.at AT TIME ZONE 'UTC')::date
        FROM (SELECT g, CASE WHEN @days = 0 THEN today + random() * (now() - today) ELSE now() - random() * make_interval(days => @days) END AS at,
                     (@keys::uuid[])[1 + (g % @keyCount)::int] AS key_id,
                     CASE WHEN g % 3 = 0 THEN 'user-' || (g % 5000) END AS end_user,
                     20 + (random() * 4000)::int AS prompt, (random() * 1200)::int AS completion,
                     CASE WHEN g % 4 = 0 THEN 16 ELSE 0 END AS cached,
                     250 + (random() * 9000)::int AS latency, g % 2 = 0 AS streamed,
                     CASE WHEN g % 100 = 0 THEN 429 WHEN g % 50 IN (1, 2) THEN 502 ELSE 200 END AS status
              FROM generate_series(1, @rows) AS g,
                   LATERAL (SELECT (now() AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC' AS today) AS midnight) AS e
        JOIN unnest(@aliases::text[], @upstreams::text[], @providers::text[], @inputs::numeric[], @outputs::numeric[],
                    @cachedInputs::numeric[]) WITH ORDINALITY AS m(alias, upstream, provider, input, output, cached_input, i)
          ON m.i = 1 + e.g % @modelCount
        """;

    public static async Task GrowAsync(NpgsqlDataSource db, long target, int days, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var rows = await CountAsync(connection, ct);
        if (rows >= target)
        {
            Console.WriteLine($"usage_events already holds {rows:N0} rows (--grow {target:N0}): nothing to add");
            return;
        }
        var started = Stopwatch.GetTimestamp();
        await connection.ExecuteAsync(new CommandDefinition(PartitionsSql, new { days }, cancellationToken: ct));
        var models = UsageWorkload.Models;
        // No command timeout: ten million rows take minutes.
        await connection.ExecuteAsync(new CommandDefinition(FillSql, new
        {
            rows = target - rows,
            days,
            keys = UsageWorkload.Keys,
            keyCount = UsageWorkload.Keys.Length,
            modelCount = models.Length,
            aliases = models.Select(m => m.Alias).ToArray(),
            upstreams = models.Select(m => m.UpstreamModel).ToArray(),
            providers = models.Select(m => m.Provider.Name).ToArray(),
            inputs = models.Select(m => m.InputPricePerMTok).ToArray(),
            outputs = models.Select(m => m.OutputPricePerMTok).ToArray(),
            cachedInputs = models.Select(m => m.CachedInputPricePerMTok).ToArray(),
        }, commandTimeout: 0, cancellationToken: ct));
        var filled = Stopwatch.GetElapsedTime(started);
        // A table in service has been vacuumed, analysed and checkpointed; without this, autovacuum and the checkpointer would
        // work through the new rows during the measurement that follows.
        await connection.ExecuteAsync(new CommandDefinition("VACUUM (ANALYZE) usage_events", commandTimeout: 0, cancellationToken: ct));
        await connection.ExecuteAsync(new CommandDefinition("CHECKPOINT", commandTimeout: 0, commandType: CommandType.Text, cancellationToken: ct));
        Console.WriteLine($"usage_events grown from {rows:N0} to {await CountAsync(connection, ct):N0} rows: insert {filled.TotalSeconds:F0} s, " +
                          $"vacuum, analyse and checkpoint {(Stopwatch.GetElapsedTime(started) - filled).TotalSeconds:F0} s");
    }

    public static Task<long> CountAsync(NpgsqlConnection connection, CancellationToken ct) =>
        connection.ExecuteScalarAsync<long>(new CommandDefinition("SELECT count(*) FROM usage_events", commandTimeout: 0, cancellationToken: ct));
}
