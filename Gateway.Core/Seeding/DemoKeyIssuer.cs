using System.Globalization;
using Gateway.Core.Keys;
using Microsoft.Extensions.Logging;

namespace Gateway.Core.Seeding;

/// <summary>
/// The development key <c>./run.sh</c> asks for (<c>Gateway:SeedDemoKey</c>, off by default): issued at most once per
/// database, tracked by its id in <c>seed_markers</c>, so renaming, revoking or deleting it never brings another, and two
/// instances starting together issue one between them. It is made to do little harm where it leaks (a terminal's
/// scrollback, a log, a forgotten <c>data/demo-key</c>): the offline mock models only, a hard cap per budget day, a rate
/// limit and an expiry. An admin may change any of these afterwards like any key's.
/// </summary>
public sealed partial class DemoKeyIssuer(KeyStore keys, TimeProvider time, ILogger<DemoKeyIssuer> logger)
{
    public const string Name = "demo";

    /// <summary>Its row in <c>seed_markers</c>.</summary>
    public const string Marker = "demo_key";

    /// <summary>Who the audit log says issued it.</summary>
    public const string Actor = "start-up (Gateway:SeedDemoKey)";

    /// <summary>Hard cap per budget day: about 500,000 output tokens of <c>mock</c>, far more than trying the README takes.</summary>
    public const decimal HardCapUsd = 1m;

    public const int RpmLimit = 60;

    public static readonly TimeSpan Lifetime = TimeSpan.FromDays(30);

    /// <summary>
    /// The offline models every install has, and the README's virtual alias <c>auto</c>: a routing rule may send
    /// <c>auto</c> anywhere, but a key limited to models is only ever served those (a rule whose target it may not use is
    /// passed over), so this key never reaches a paid provider.
    /// </summary>
    public static readonly IReadOnlyList<string> AllowedModels = ["mock", "mock-mini", "auto"];

    /// <summary>Issues the demo key unless this database ever had one; null if it had.</summary>
    public async Task<CreatedKey?> IssueOnceAsync(CancellationToken ct)
    {
        var request = new CreateKeyRequest(Name, AllowedModels, time.GetUtcNow() + Lifetime, HardCapUsd: HardCapUsd, RpmLimit: RpmLimit,
            Owner: "development (issued at start-up)");
        // Its audit entry is written in the key's own transaction (an issued key always has one).
        if (await keys.CreateOnceAsync(Marker, request, Actor, ct) is not { } created) return null;
        Log.Issued(logger, created.Prefix, Describe(created));
        return created;
    }

    /// <summary>The key's limits in words, for the line printed under it.</summary>
    public static string Describe(KeyView key) => string.Create(CultureInfo.InvariantCulture,
        $"models {string.Join(", ", key.AllowedModels)}; hard cap ${key.HardCapUsd:0.##} per budget day; {key.RpmLimit} requests per minute; expires {key.ExpiresAt:yyyy-MM-dd HH:mm} UTC");

    private static partial class Log
    {
        [LoggerMessage(EventId = 1005, Level = LogLevel.Warning,
            Message = "Demo key {KeyPrefix} issued (Gateway:SeedDemoKey is on; for development only): {Limits}")]
        public static partial void Issued(ILogger logger, string keyPrefix, string limits);
    }
}
