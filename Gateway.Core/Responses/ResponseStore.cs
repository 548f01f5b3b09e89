using Dapper;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Gateway.Core.Responses;

/// <summary>
/// The Responses API's stored responses (<c>stored_responses</c>): each row belongs to the key that created it, and only that key
/// reads or deletes it. A row past its <c>expires_at</c> (<see cref="ResponsesOptions.RetentionDays"/>) is treated as gone; expired
/// rows are deleted in batches after a write, at most every few minutes, off the caller's path.
/// </summary>
public sealed partial class ResponseStore(NpgsqlDataSource db, TimeProvider time, IOptions<ResponsesOptions> options, ILogger<ResponseStore> log)
{
    private static readonly TimeSpan PurgeEvery = TimeSpan.FromMinutes(5);
    private const int PurgeBatch = 1000;
    private long _lastPurge;

    /// <summary>A stored response: the response object and the Responses input items that continue its conversation (JSON texts).</summary>
    public sealed record Stored(string Items, string Response);

    /// <summary>Stores a response for <paramref name="keyId"/>; readable as soon as this returns.</summary>
    public async Task SaveAsync(string id, Guid keyId, string items, string response, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        await using (var connection = await db.OpenConnectionAsync(ct))
        {
            await connection.ExecuteAsync("""
                INSERT INTO stored_responses (id, key_id, created_at, expires_at, items, response)
                VALUES (@id, @keyId, @now, @expires, @items::jsonb, @response::jsonb)
                ON CONFLICT (id) DO UPDATE SET items = excluded.items, response = excluded.response
                """, new { id, keyId, now = now.UtcDateTime, expires = now.AddDays(options.Value.RetentionDays).UtcDateTime, items, response, ct });
        }
        if (time.GetElapsedTime(Interlocked.Read(ref _lastPurge)) > PurgeEvery)
        {
            Interlocked.Exchange(ref _lastPurge, time.GetTimestamp());
            // What had expired at this write: a purge the thread pool runs late never reaches past the moment it was due.
            _ = Task.Run(() => PurgeExpiredAsync(now), CancellationToken.None);
        }
    }

    /// <summary>The key's stored response, or null when there is none (another key's, deleted, or expired).</summary>
    public async Task<Stored?> GetAsync(string id, Guid keyId, CancellationToken ct)
    {
        if (!CouldBeStored(id)) return null;
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.QuerySingleOrDefaultAsync<Stored>("""
            SELECT items::text AS items, response::text AS response FROM stored_responses
            WHERE id = @id AND key_id = @keyId AND expires_at > @now
            """, new { id, keyId, now = time.GetUtcNow().UtcDateTime, ct });
    }

    /// <summary>Deletes the key's stored response; false when it had none by that id.</summary>
    public async Task<bool> DeleteAsync(string id, Guid keyId, CancellationToken ct)
    {
        if (!CouldBeStored(id)) return false;
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.ExecuteAsync("""
            DELETE FROM stored_responses WHERE id = @id AND key_id = @keyId AND expires_at > @now
            """, new { id, keyId, now = time.GetUtcNow().UtcDateTime, ct }) > 0;
    }

    /// <summary>
    /// Whether <paramref name="id"/> could name a stored response: ids are ours (<c>resp_</c> and hex), so a client's id of another
    /// form (too long, or with characters PostgreSQL text cannot hold, such as NUL) is simply not found, without asking the database.
    /// </summary>
    private static bool CouldBeStored(string id) =>
        id.Length is > 0 and <= 128 && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-');

    /// <summary>Deletes expired rows, a batch at a time, until none is left; returns how many.</summary>
    public Task<int> PurgeExpiredAsync() => PurgeExpiredAsync(time.GetUtcNow());

    private async Task<int> PurgeExpiredAsync(DateTimeOffset now)
    {
        var deleted = 0;
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await using var connection = await db.OpenConnectionAsync(timeout.Token);
            int batch;
            do
            {
                batch = await connection.ExecuteAsync("""
                    DELETE FROM stored_responses WHERE id IN (SELECT id FROM stored_responses WHERE expires_at <= @now LIMIT @limit)
                    """, new { now = now.UtcDateTime, limit = PurgeBatch, timeout.Token });
                deleted += batch;
            } while (batch == PurgeBatch);
        }
        catch (Exception ex) when (ex is NpgsqlException or OperationCanceledException or TimeoutException)
        {
            Log.PurgeFailed(log, ex); // the next write tries again; expired rows are never read meanwhile
        }
        return deleted;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1920, Level = LogLevel.Warning, Message = "Deleting expired stored responses failed")]
        public static partial void PurgeFailed(ILogger logger, Exception exception);
    }
}
