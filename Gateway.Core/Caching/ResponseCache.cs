using System.Buffers;
using System.Security.Cryptography;
using System.Text.Json;
using Dapper;
using Gateway.Core.Catalog;
using Gateway.Core.Keys;
using Gateway.Core.Providers;
using Gateway.Core.Redis;
using Gateway.Core.Wire;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using StackExchange.Redis;

namespace Gateway.Core.Caching;

/// <summary>A cached answer: the OpenAI body as first served, and what it used then.</summary>
public sealed record CachedAnswer(byte[] Body, string Provider, string? ServedModel, TokenUsage Usage);

/// <summary>
/// Exact-match cache of deterministic answers, shared by every instance through an UNLOGGED
/// PostgreSQL table, or through Redis (<see cref="CacheOptions.Store"/>; the same keys, scopes and TTLs). Only for keys with <c>cache_ttl_seconds</c>, and only for requests with
/// <c>temperature: 0</c>, one choice and no tools. The key is a SHA-256 of the request (without
/// <c>user</c> and the stream options: a streamed and a plain request share an answer), the model that
/// serves it and the asking key's <see cref="CacheScope"/>: by default the key itself, so one key's answers are never
/// another's and a hit tells no tenant what another asked; keys an admin set to share (a team's exact tag set, or
/// <c>global</c>) share one partition. A reader gets an entry only if it may use the model that answered (a fallback's answer
/// is not served to a key not allowed that fallback) and the entry is no older than the reader's own TTL. Answers are stored
/// as OpenAI <c>chat.completion</c> bodies; a streaming client gets one replayed as chunks. A lookup that fails or takes over a
/// second is a miss (in Redis: a command over its timeout, or Redis unreachable); storing happens after the answer has left.
/// </summary>
public sealed partial class ResponseCache(NpgsqlDataSource db, TimeProvider time, ILogger<ResponseCache> logger,
    IOptions<CacheOptions>? options = null, RedisLink? redis = null)
{
    private readonly RedisLink? _redis = options?.Value.InRedis == true ? redis : null;

    private static readonly TimeSpan LookupBudget = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan PurgeEvery = TimeSpan.FromMinutes(5);
    private long _lastPurge;

    public static bool IsCacheable(ChatCompletionRequest request) =>
        request.Temperature == 0 && (request.N ?? 1) == 1
        // The cache keeps the canonical answer, which cannot hold what only the upstream's own protocol carries (a built-in
        // tool's output items, a server tool's blocks): such a request is not answered from the cache.
        && request.Native is not { Untranslated.Count: > 0 }
        && (request.Tools is not { ValueKind: JsonValueKind.Array } tools || tools.GetArrayLength() == 0);

    /// <summary>The <c>cache_scope</c> named <paramref name="name"/> (<c>key</c>, <c>tags</c>, <c>global</c>), or null.</summary>
    public static CacheScope? ParseScope(string? name) => name switch
    {
        "key" => CacheScope.Key,
        "tags" => CacheScope.Tags,
        "global" => CacheScope.Global,
        _ => null,
    };

    /// <param name="asker">The asking key: its <see cref="GatewayKey.CacheScope"/> says whose answers it shares (by default none).</param>
    public static byte[] Key(ChatCompletionRequest request, ModelRoute route, GatewayKey asker)
    {
        var (user, stream, streamOptions) = (request.User, request.Stream, request.StreamOptions);
        try
        {
            // Who asks, and whether the answer comes as a stream, does not change a deterministic answer.
            (request.User, request.Stream, request.StreamOptions) = (null, null, null);
            var body = JsonSerializer.SerializeToUtf8Bytes(request, GatewayJsonContext.Wire.ChatCompletionRequest);
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes($"{Partition(asker)}\n{route.Alias}\n{route.Provider.Name}\n{route.UpstreamModel}\n"));
            hash.AppendData(body);
            // A passed-through request's own body holds what its translation left out (a document, thinking, top_k): two
            // requests that differ only there are different questions.
            if (request.Native is { } native)
            {
                var own = native.Body.DeepClone().AsObject();
                own.Remove("stream");
                own.Remove("metadata");
                hash.AppendData("\nnative\n"u8);
                hash.AppendData(JsonSerializer.SerializeToUtf8Bytes(own, GatewayJsonContext.Wire.JsonObject));
            }
            return hash.GetHashAndReset();
        }
        finally
        {
            (request.User, request.Stream, request.StreamOptions) = (user, stream, streamOptions);
        }
    }

    /// <summary>
    /// The keys sharing <paramref name="asker"/>'s entries, as a string no other scope can produce: its id, its tag set (each
    /// tag length-prefixed, in ordinal order, so <c>[a, b]</c> and <c>[b, a]</c> are one team and no tag can pose as two), or
    /// everyone who chose global. A <c>tags</c> key without tags (the database refuses one) keeps to itself.
    /// </summary>
    private static string Partition(GatewayKey asker) => asker.CacheScope switch
    {
        CacheScope.Global => "global",
        CacheScope.Tags when asker.Tags.Count > 0 =>
            "tags:" + string.Concat(asker.Tags.Order(StringComparer.Ordinal).Select(t => $"{t.Length}:{t};")),
        _ => $"key:{asker.Id:N}",
    };

    /// <summary>
    /// The entry under <paramref name="key"/> if <paramref name="reader"/> may have it: unexpired, stored no longer than the
    /// reader's own <c>cache_ttl_seconds</c> ago (an entry another key of its scope wrote with a longer TTL is not staler than
    /// the reader asked for), and answered by a model the reader may use. Null otherwise, and on any failure.
    /// </summary>
    public async Task<CachedAnswer?> GetAsync(byte[] key, GatewayKey reader, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        if (_redis is not null) return await GetFromRedisAsync(_redis, key, reader, now);
        using var budget = CancellationTokenSource.CreateLinkedTokenSource(ct);
        budget.CancelAfter(LookupBudget);
        try
        {
            await using var connection = await db.OpenConnectionAsync(budget.Token);
            var row = await connection.QuerySingleOrDefaultAsync<Row>("""
                SELECT body, provider, served_model, served_alias, prompt_tokens, completion_tokens, cached_tokens
                FROM response_cache WHERE cache_key = @key AND expires_at > @now AND stored_at >= @oldest
                """, new { key, now = now.UtcDateTime, oldest = (now - TimeSpan.FromSeconds(reader.CacheTtlSeconds ?? 0)).UtcDateTime, budget.Token });
            // The asked alias is in the key, and routing allowed it; the one that answered may be a fallback this reader may not use.
            if (row?.ServedAlias is not { } answeredBy || !reader.MayUse(answeredBy)) return null;
            return new CachedAnswer(row.Body, row.Provider, row.ServedModel, new TokenUsage(row.PromptTokens, row.CompletionTokens, row.CachedTokens));
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException || ex is OperationCanceledException && !ct.IsCancellationRequested)
        {
            Log.LookupFailed(logger, ex.GetType().Name);
            return null;
        }
    }

    /// <summary>
    /// Stores an answer in the background (the client already has it); failures are only logged. <paramref name="route"/> is
    /// the candidate that answered: its alias is kept, for <see cref="GetAsync"/> to check against each reader's allowed models.
    /// </summary>
    public void Store(byte[] key, UpstreamCompletion answer, ModelRoute route, int ttlSeconds)
    {
        var now = time.GetUtcNow();
        if (_redis is not null)
        {
            _ = StoreInRedisAsync(_redis, key, answer, route, ttlSeconds, now);
            return;
        }
        var purge = time.GetElapsedTime(Interlocked.Read(ref _lastPurge)) > PurgeEvery;
        if (purge) Interlocked.Exchange(ref _lastPurge, time.GetTimestamp());
        _ = Task.Run(async () =>
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await using var connection = await db.OpenConnectionAsync(timeout.Token);
                var usage = answer.Usage ?? default;
                await connection.ExecuteAsync("""
                    INSERT INTO response_cache (cache_key, body, provider, served_model, served_alias, prompt_tokens, completion_tokens, cached_tokens,
                                                stored_at, expires_at)
                    VALUES (@key, @body, @provider, @served, @alias, @prompt, @completion, @cached, @now, @expires)
                    ON CONFLICT (cache_key) DO UPDATE SET body = excluded.body, provider = excluded.provider, served_model = excluded.served_model,
                        served_alias = excluded.served_alias, stored_at = excluded.stored_at, prompt_tokens = excluded.prompt_tokens,
                        completion_tokens = excluded.completion_tokens, cached_tokens = excluded.cached_tokens,
                        -- A key with a shorter TTL refreshing a shared entry does not shorten it for the others.
                        expires_at = GREATEST(response_cache.expires_at, excluded.expires_at)
                    """, new
                {
                    key, body = answer.Body.ToArray(), provider = route.Provider.Name, served = answer.ServedModel, alias = route.Alias,
                    prompt = usage.PromptTokens, completion = usage.CompletionTokens, cached = usage.CachedTokens,
                    now = now.UtcDateTime, expires = (now + TimeSpan.FromSeconds(ttlSeconds)).UtcDateTime, timeout.Token,
                });
                if (purge)
                {
                    await connection.ExecuteAsync("DELETE FROM response_cache WHERE expires_at < @now", new { now = now.UtcDateTime, timeout.Token });
                }
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or OperationCanceledException)
            {
                Log.StoreFailed(logger, ex.GetType().Name);
            }
        });
    }

    private static readonly RedisValue[] Fields = ["body", "provider", "served_model", "served_alias", "prompt", "completion", "cached", "stored_at"];

    private static RedisKey RedisKeyOf(byte[] key) => "gw:cache:" + Convert.ToHexStringLower(key);

    // The entry's fields, and its expiry moved later, never earlier: a key with a shorter TTL refreshing a shared entry does not
    // shorten it for the others (as GREATEST does in PostgreSQL). PTTL is -1 for a key without one, -2 for none.
    private const string StoreScript = """
        redis.call('HSET', KEYS[1], 'body', ARGV[1], 'provider', ARGV[2], 'served_alias', ARGV[3], 'prompt', ARGV[4],
          'completion', ARGV[5], 'cached', ARGV[6], 'stored_at', ARGV[7])
        if ARGV[8] == '' then redis.call('HDEL', KEYS[1], 'served_model') else redis.call('HSET', KEYS[1], 'served_model', ARGV[8]) end
        if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[9]) then redis.call('PEXPIRE', KEYS[1], ARGV[9]) end
        return 1
        """;

    private static async Task<CachedAnswer?> GetFromRedisAsync(RedisLink link, byte[] key, GatewayKey reader, DateTimeOffset now)
    {
        if (!link.IsUp) return null; // its outage is logged once by the link, not per lookup
        try
        {
            var row = await link.Database.HashGetAsync(RedisKeyOf(key), Fields);
            if (row[0].IsNull || row[7].IsNull) return null;
            // No older than the reader's own TTL; the asked alias is in the key, the one that answered may be a fallback.
            if ((long)row[7] < (now - TimeSpan.FromSeconds(reader.CacheTtlSeconds ?? 0)).ToUnixTimeMilliseconds()) return null;
            if (row[3].IsNull || !reader.MayUse((string)row[3]!)) return null;
            return new CachedAnswer((byte[])row[0]!, (string)row[1]!, (string?)row[2],
                new TokenUsage((int)row[4], (int)row[5], (int)row[6]));
        }
        catch (Exception ex) when (RedisLink.IsOutage(ex))
        {
            link.Failed(ex);
            return null;
        }
    }

    private async Task StoreInRedisAsync(RedisLink link, byte[] key, UpstreamCompletion answer, ModelRoute route, int ttlSeconds, DateTimeOffset now)
    {
        if (!link.IsUp) return;
        try
        {
            var usage = answer.Usage ?? default;
            await link.Database.ScriptEvaluateAsync(StoreScript, [RedisKeyOf(key)],
            [
                answer.Body.ToArray(), route.Provider.Name, route.Alias, usage.PromptTokens, usage.CompletionTokens, usage.CachedTokens,
                now.ToUnixTimeMilliseconds(), answer.ServedModel ?? "", (long)ttlSeconds * 1000,
            ]);
        }
        catch (Exception ex) when (RedisLink.IsOutage(ex))
        {
            link.Failed(ex);
            Log.StoreFailed(logger, ex.GetType().Name);
        }
    }

    /// <summary>The <c>chat.completion</c> body a streamed answer would have had, for storing it.</summary>
    public static byte[] CompletionBody(string id, long created, string model, string text, string finishReason, TokenUsage usage)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", id);
            json.WriteString("object", "chat.completion");
            json.WriteNumber("created", created);
            json.WriteString("model", model);
            json.WriteStartArray("choices");
            json.WriteStartObject();
            json.WriteNumber("index", 0);
            json.WriteStartObject("message");
            json.WriteString("role", "assistant");
            json.WriteString("content", text);
            json.WriteNull("refusal");
            json.WriteEndObject();
            json.WriteNull("logprobs");
            json.WriteString("finish_reason", finishReason);
            json.WriteEndObject();
            json.WriteEndArray();
            WriteUsage(json, usage);
            json.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// A cached <c>chat.completion</c> as the chunks of a streamed answer (OpenAI's chunk format): a chunk with the role and the
    /// whole content, one with the finish reason, and the usage chunk when the client asked for it (<c>stream_options.include_usage</c>).
    /// </summary>
    public static IReadOnlyList<byte[]> AsChunks(ReadOnlyMemory<byte> completion, bool includeUsage)
    {
        using var doc = JsonDocument.Parse(completion);
        var root = doc.RootElement;
        var choice = root.GetProperty("choices")[0];
        var message = choice.GetProperty("message");
        var content = message.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : "";
        var finish = choice.TryGetProperty("finish_reason", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString() : "stop";
        var usage = includeUsage && root.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object ? u : (JsonElement?)null;
        var chunks = new List<byte[]>(3)
        {
            Chunk(json => Delta(json, root, withUsageNull: includeUsage, delta =>
            {
                delta.WriteString("role", "assistant");
                delta.WriteString("content", content);
            }, finish: null)),
            Chunk(json => Delta(json, root, withUsageNull: includeUsage, _ => { }, finish)),
        };
        if (usage is { } reported)
        {
            chunks.Add(Chunk(json =>
            {
                Header(json, root);
                json.WriteStartArray("choices");
                json.WriteEndArray();
                json.WritePropertyName("usage");
                reported.WriteTo(json);
                json.WriteEndObject();
            }));
        }
        return chunks;

        static byte[] Chunk(Action<Utf8JsonWriter> write)
        {
            var output = new ArrayBufferWriter<byte>(256);
            using (var json = new Utf8JsonWriter(output)) write(json);
            return output.WrittenSpan.ToArray();
        }

        static void Header(Utf8JsonWriter json, JsonElement root)
        {
            json.WriteStartObject();
            Copy(json, root, "id");
            json.WriteString("object", "chat.completion.chunk");
            Copy(json, root, "created");
            Copy(json, root, "model");
            Copy(json, root, "system_fingerprint");
        }

        static void Copy(Utf8JsonWriter json, JsonElement root, string name)
        {
            if (!root.TryGetProperty(name, out var value)) return;
            json.WritePropertyName(name);
            value.WriteTo(json);
        }

        static void Delta(Utf8JsonWriter json, JsonElement root, bool withUsageNull, Action<Utf8JsonWriter> delta, string? finish)
        {
            Header(json, root);
            json.WriteStartArray("choices");
            json.WriteStartObject();
            json.WriteNumber("index", 0);
            json.WriteStartObject("delta");
            delta(json);
            json.WriteEndObject();
            json.WriteNull("logprobs");
            if (finish is null) json.WriteNull("finish_reason");
            else json.WriteString("finish_reason", finish);
            json.WriteEndObject();
            json.WriteEndArray();
            if (withUsageNull) json.WriteNull("usage");
            json.WriteEndObject();
        }
    }

    private static void WriteUsage(Utf8JsonWriter json, TokenUsage usage)
    {
        json.WriteStartObject("usage");
        json.WriteNumber("prompt_tokens", usage.PromptTokens);
        json.WriteNumber("completion_tokens", usage.CompletionTokens);
        json.WriteNumber("total_tokens", usage.PromptTokens + usage.CompletionTokens);
        json.WriteStartObject("prompt_tokens_details");
        json.WriteNumber("cached_tokens", usage.CachedTokens);
        json.WriteEndObject();
        json.WriteEndObject();
    }

#pragma warning disable CA1812 // instantiated by Dapper
    internal sealed class Row
    {
        public byte[] Body { get; init; } = [];
        public string Provider { get; init; } = "";
        public string? ServedModel { get; init; }
        public string? ServedAlias { get; init; }
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
