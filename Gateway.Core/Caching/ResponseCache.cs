using System.Security.Cryptography;
using System.Text.Json;
using Dapper;
using Gateway.Core.Catalog;
using Gateway.Core.Providers;
using Gateway.Core.Wire;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Gateway.Core.Caching;

/// <summary>A cached answer: the OpenAI body as first served, and what it used then.</summary>
public sealed record CachedAnswer(byte[] Body, string Provider, string? ServedModel, TokenUsage Usage);

/// <summary>
/// Exact-match cache of deterministic answers, shared by every instance through an UNLOGGED
/// PostgreSQL table. Only for keys with <c>cache_ttl_seconds</c>, and only for non-streaming requests
/// with <c>temperature: 0</c>, one choice and no tools. The key is a SHA-256 of the request (without
/// <c>user</c>) and the model that serves it. A lookup that fails or takes over a second is a miss;
/// storing happens after the answer has left.
/// </summary>
public sealed partial class ResponseCache(NpgsqlDataSource db, TimeProvider time, ILogger<ResponseCache> logger)
{
    private static readonly TimeSpan LookupBudget = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan PurgeEvery = TimeSpan.FromMinutes(5);
    private long _lastPurge;

    public static bool IsCacheable(ChatCompletionRequest request) =>
        !request.IsStreaming && request.Temperature == 0 && (request.N ?? 1) == 1
        && (request.Tools is not { ValueKind: JsonValueKind.Array } tools || tools.GetArrayLength() == 0);

    public static byte[] Key(ChatCompletionRequest request, ModelRoute route)
    {
        var user = request.User;
        try
        {
            request.User = null; // who asks does not change a deterministic answer
            var body = JsonSerializer.SerializeToUtf8Bytes(request, GatewayJsonContext.Wire.ChatCompletionRequest);
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes($"{route.Alias}\n{route.Provider.Name}\n{route.UpstreamModel}\n"));
            hash.AppendData(body);
            return hash.GetHashAndReset();
        }
        finally
        {
            request.User = user;
        }
    }

    public async Task<CachedAnswer?> GetAsync(byte[] key, CancellationToken ct)
    {
        using var budget = CancellationTokenSource.CreateLinkedTokenSource(ct);
        budget.CancelAfter(LookupBudget);
        try
        {
            await using var connection = await db.OpenConnectionAsync(budget.Token);
            var row = await connection.QuerySingleOrDefaultAsync<Row>(new CommandDefinition("""
                SELECT body, provider, served_model, prompt_tokens, completion_tokens, cached_tokens
                FROM response_cache WHERE cache_key = @key AND expires_at > @now
                """, new { key, now = time.GetUtcNow().UtcDateTime }, cancellationToken: budget.Token));
            return row is null ? null : new CachedAnswer(row.Body, row.Provider, row.ServedModel, new TokenUsage(row.PromptTokens, row.CompletionTokens, row.CachedTokens));
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException || ex is OperationCanceledException && !ct.IsCancellationRequested)
        {
            Log.LookupFailed(logger, ex.GetType().Name);
            return null;
        }
    }

    /// <summary>Stores an answer in the background (the client already has it); failures are only logged.</summary>
    public void Store(byte[] key, UpstreamCompletion answer, ModelRoute route, int ttlSeconds)
    {
        var now = time.GetUtcNow();
        var purge = time.GetElapsedTime(Interlocked.Read(ref _lastPurge)) > PurgeEvery;
        if (purge) Interlocked.Exchange(ref _lastPurge, time.GetTimestamp());
        _ = Task.Run(async () =>
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await using var connection = await db.OpenConnectionAsync(timeout.Token);
                var usage = answer.Usage ?? default;
                await connection.ExecuteAsync(new CommandDefinition("""
                    INSERT INTO response_cache (cache_key, body, provider, served_model, prompt_tokens, completion_tokens, cached_tokens, expires_at)
                    VALUES (@key, @body, @provider, @served, @prompt, @completion, @cached, @expires)
                    ON CONFLICT (cache_key) DO UPDATE SET body = excluded.body, provider = excluded.provider, served_model = excluded.served_model,
                        prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,
                        cached_tokens = excluded.cached_tokens, expires_at = excluded.expires_at
                    """, new
                {
                    key, body = answer.Body.ToArray(), provider = route.Provider.Name, served = answer.ServedModel,
                    prompt = usage.PromptTokens, completion = usage.CompletionTokens, cached = usage.CachedTokens,
                    expires = (now + TimeSpan.FromSeconds(ttlSeconds)).UtcDateTime,
                }, cancellationToken: timeout.Token));
                if (purge)
                {
                    await connection.ExecuteAsync(new CommandDefinition("DELETE FROM response_cache WHERE expires_at < @now",
                        new { now = now.UtcDateTime }, cancellationToken: timeout.Token));
                }
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or OperationCanceledException)
            {
                Log.StoreFailed(logger, ex.GetType().Name);
            }
        });
    }

#pragma warning disable CA1812 // instantiated by Dapper
    private sealed class Row
    {
        public byte[] Body { get; init; } = [];
        public string Provider { get; init; } = "";
        public string? ServedModel { get; init; }
        public int PromptTokens { get; init; }
        public int CompletionTokens { get; init; }
        public int CachedTokens { get; init; }
    }
#pragma warning restore CA1812

    private static partial class Log
    {
        [LoggerMessage(EventId = 1501, Level = LogLevel.Warning, Message = "Response cache lookup failed ({Error}); treated as a miss")]
        public static partial void LookupFailed(ILogger logger, string error);

        [LoggerMessage(EventId = 1502, Level = LogLevel.Warning, Message = "Storing a cached response failed ({Error})")]
        public static partial void StoreFailed(ILogger logger, string error);
    }
}
