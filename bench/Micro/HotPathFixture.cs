using Dapper;
using Gateway.Core.Budgets;
using Gateway.Core.Chat;
using Gateway.Core.Keys;
using Gateway.Core.Persistence;
using Gateway.Core.Routing;
using Gateway.Core.Seeding;
using Gateway.Core.Validation;
using Gateway.Core.Wire;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;

namespace Micro;

/// <summary>
/// What the hot-path benchmarks share, set up once per process on the <c>ConnectionStrings__Gateway</c> database: 10,000 keys
/// (one of them with a daily budget and a hard cap), the catalog and twenty routing rules of <c>hot-path.json</c>, a tag budget,
/// all loaded into memory by the gateway's own start-up (<see cref="GatewayStartup"/>), and requests parsed as the endpoint
/// parses them.
/// </summary>
internal sealed class HotPathFixture
{
    public const int KeyCount = 10_000;

    /// <summary>The audit log's actor of the fixture's changes.</summary>
    private const string BenchActor = "bench (micro)";

    private static readonly Lazy<Task<HotPathFixture>> Shared = new(CreateAsync);

    private HotPathFixture(IServiceProvider services, GatewayKey key, string token, ChatCompletionRequest auto, ChatCompletionRequest direct)
    {
        Services = services;
        Key = key;
        Token = token;
        AutoRequest = auto;
        DirectRequest = direct;
    }

    public static Task<HotPathFixture> GetAsync() => Shared.Value;

    public IServiceProvider Services { get; }

    /// <summary>The budgeted key, as the key cache returns it for <see cref="Token"/>.</summary>
    public GatewayKey Key { get; }

    /// <summary>The budgeted key's bearer token (what <c>Authorization: Bearer</c> carries).</summary>
    public string Token { get; }

    /// <summary>A chat request for the virtual alias <c>auto</c>, which only the last routing rule matches.</summary>
    public ChatCompletionRequest AutoRequest { get; }

    /// <summary>The same request for a model alias no rule covers: every rule is passed over, then the alias's own chain.</summary>
    public ChatCompletionRequest DirectRequest { get; }

    /// <summary>The request headers routing rules may look at.</summary>
    public static string? Header(string name) => name.Equals("x-app", StringComparison.OrdinalIgnoreCase) ? "web" : null;

    private const string Prompt = """
        [{"role":"system","content":"You are the assistant of Acme's customer portal. Answer briefly and politely, and never promise refunds."},
         {"role":"user","content":"Hi! I ordered a pair of running shoes last week (order 48213) and they still have not shipped. What usually causes a delay like this, and what should I do next?"}]
        """;

    private static async Task<HotPathFixture> CreateAsync()
    {
        var keyRing = MicroHost.ScratchDirectory("keys");
        // The services live as long as the process (every benchmark uses them), and so does the key ring's folder.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(keyRing, recursive: true);
        var host = MicroHost.Build(new Dictionary<string, string?>
        {
            ["Gateway:SeedFile"] = Path.Combine(AppContext.BaseDirectory, "hot-path.json"),
            ["Gateway:DataProtectionKeysDirectory"] = keyRing,
        });
        var services = host.Services;
        var ct = CancellationToken.None;
        await services.GetRequiredService<Migrator>().MigrateAsync(ct);
        var token = await CreateKeysAsync(services, ct);
        await services.GetRequiredService<TagBudgets>().UpsertAsync(new TagBudget("research", 500m, 10_000m), BenchActor, ct);
        // Migrations (again: a no-op), the seed file, then the key, model, rule and tag-budget snapshots: as at a gateway's start.
        await services.GetRequiredService<GatewayStartup>().StartAsync(ct);

        var parser = services.GetRequiredService<ChatRequestParser>();
        var (key, refused) = services.GetRequiredService<KeyCache>().Authenticate(token);
        if (key is null) throw new InvalidOperationException($"The benchmark key was refused: {refused?.Message}");
        var fixture = new HotPathFixture(services, key, token, Parse(parser, "auto"), Parse(parser, "gpt-4o-mini"));
        // The first request of the day leases the key's first slice (a database round trip); the benchmarks measure what follows.
        var decision = services.GetRequiredService<ChatRouter>().Route(key, fixture.AutoRequest, Header).Decision!;
        var budget = await services.GetRequiredService<RequestBudget>().BudgetAsync(key, services.GetRequiredService<BudgetCalendar>().Today, fixture.AutoRequest, decision, ct);
        budget.Reservation?.Settle(0);
        return fixture;
    }

    private static ChatCompletionRequest Parse(ChatRequestParser parser, string model)
    {
        // Clients that set an output limit: a capped key's request without one would be given one by the budget check.
        var body = System.Text.Encoding.UTF8.GetBytes(
            $$"""{"model":"{{model}}","user":"user-4711","max_tokens":400,"temperature":0.7,"metadata":{"feature":"chat"},"messages":{{Prompt}}}""");
        var parsed = parser.Parse(body);
        return parsed.Value ?? throw new InvalidOperationException($"The benchmark request is invalid: {parsed.Failure?.Message}");
    }

    /// <summary>
    /// The budgeted key through the admin path (<see cref="KeyStore"/>), and the rest in one statement. Keys named <c>micro-…</c>
    /// from an earlier run are removed first: only their hashes are stored, so their secrets are unknown now.
    /// </summary>
    private static async Task<string> CreateKeysAsync(IServiceProvider services, CancellationToken ct)
    {
        var db = services.GetRequiredService<NpgsqlDataSource>();
        await using (var connection = await db.OpenConnectionAsync(ct))
            await connection.ExecuteAsync(new CommandDefinition("DELETE FROM api_keys WHERE name LIKE 'micro-%'", cancellationToken: ct));

        // Budgets large enough that the whole run stays inside the first leased slice (a tenth of the cap) and under the daily
        // budget, so what is measured is the per-request check, not a downgrade or the next lease's round trip.
        var budgeted = await services.GetRequiredService<KeyStore>().CreateAsync(new CreateKeyRequest("micro-budgeted",
            DailyBudgetUsd: 50_000m, HardCapUsd: 100_000m, Tags: ["support", "team-emea"]), BenchActor, ct);

        var others = Enumerable.Range(1, KeyCount - 1).Select(_ => ApiKeySecret.Create()).ToArray();
        await using (var connection = await db.OpenConnectionAsync(ct))
        {
            await connection.ExecuteAsync(new CommandDefinition("""
                INSERT INTO api_keys (id, name, prefix, key_hash, tags)
                SELECT gen_random_uuid(), 'micro-' || n, prefix, hash, ARRAY['team-' || (n % 50)]
                FROM unnest(@prefixes::text[], @hashes::bytea[]) WITH ORDINALITY AS k(prefix, hash, n)
                """, new { prefixes = others.Select(k => k.Prefix).ToArray(), hashes = others.Select(k => k.Hash).ToArray() },
                cancellationToken: ct));
        }
        return budgeted.Key;
    }
}
