using System.ComponentModel.DataAnnotations;

namespace Gateway.Core;

/// <summary>Top-level settings (section <c>Gateway</c>); see the README's configuration table.</summary>
public sealed class GatewayOptions
{
    public const string SectionName = "Gateway";

    /// <summary>Bearer token of the admin REST API. Unset: the admin API refuses every call.</summary>
    public string? MasterKey { get; set; }

    /// <summary>
    /// When set, the admin REST API answers only on connections to this local port (add a listener for it, e.g. a
    /// loopback-only URL in <c>ASPNETCORE_URLS</c>); on every other port it is a 404.
    /// </summary>
    [Range(1, 65535)]
    public int? AdminPort { get; set; }

    /// <summary>
    /// When set, <c>/metrics</c> and <c>/health/upstreams</c> answer only on connections to this local port (it may be the
    /// <see cref="AdminPort"/>); elsewhere they are a 404. Unset: every port serves them. <c>/health/live</c> and
    /// <c>/health/ready</c> stay on every port, for load balancers and orchestrators.
    /// </summary>
    [Range(1, 65535)]
    public int? ManagementPort { get; set; }

    /// <summary>Failed admin API authentications one client address may make within <see cref="AdminAuthFailureWindowSeconds"/>; then 429.</summary>
    [Range(1, 1_000_000)]
    public int AdminAuthFailuresPerAddress { get; set; } = 10;

    /// <summary>The sliding window <see cref="AdminAuthFailuresPerAddress"/> counts in.</summary>
    [Range(1, 86_400)]
    public int AdminAuthFailureWindowSeconds { get; set; } = 60;

    /// <summary>
    /// Proxies (addresses or CIDR networks) whose <c>X-Forwarded-For</c> is believed: the client address then is the one
    /// they name (the nearest hop only). Empty (the default): the header is ignored and the connection's address counts.
    /// </summary>
    public string[] TrustedProxies { get; set; } = [];

    /// <summary>Largest accepted request body for /v1 endpoints; larger ones get 413.</summary>
    [Range(1024, 512L * 1024 * 1024)]
    public long MaxRequestBodyBytes { get; set; } = 10 * 1024 * 1024;

    /// <summary>Most entries in a chat request's <c>messages</c>; more get 400 <c>array_above_max_length</c>.</summary>
    [Range(1, 1_000_000)]
    public int MaxMessages { get; set; } = 2048;

    /// <summary>Most entries in a chat request's <c>tools</c> (OpenAI's own limit is 128).</summary>
    [Range(1, 100_000)]
    public int MaxTools { get; set; } = 128;

    /// <summary>Most strings in a chat request's <c>stop</c> (OpenAI allows 4).</summary>
    [Range(1, 1024)]
    public int MaxStopSequences { get; set; } = 4;

    /// <summary>Most content parts (text, image…) over all messages of a chat request.</summary>
    [Range(1, 1_000_000)]
    public int MaxContentParts { get; set; } = 8192;

    /// <summary>Most inputs in one embeddings request (OpenAI's own limit is 2,048).</summary>
    [Range(1, 1_000_000)]
    public int MaxEmbeddingInputs { get; set; } = 2048;

    /// <summary>On SIGTERM, how long in-flight requests get to finish before the usage writer's final flush.</summary>
    [Range(1, 3600)]
    public int ShutdownDrainSeconds { get; set; } = 30;

    /// <summary>Apply migrations at start-up (they can also run alone: <c>Gateway.Api migrate</c>).</summary>
    public bool MigrateOnStart { get; set; } = true;

    /// <summary>Declarative providers and models applied at start-up; a missing file is skipped.</summary>
    public string SeedFile { get; set; } = "gateway.json";

    /// <summary>
    /// Issue the development demo key at start-up (<see cref="Seeding.DemoKeyIssuer"/>: mock models only, a small daily hard cap,
    /// a rate limit, an expiry) unless this database ever had one, and print it once. Off by default; <c>run.sh</c> turns it on.
    /// </summary>
    public bool SeedDemoKey { get; set; }

    /// <summary>
    /// Where the demo key is also written when it is issued (readable by its owner only), so a script or the README's examples
    /// can read it (<c>run.sh</c>: <c>data/demo-key</c>). Unset: only printed.
    /// </summary>
    public string? DemoKeyFile { get; set; }

    /// <summary>Folders whose files may be named by <c>file:</c> secret references (Docker and Kubernetes secrets by default).</summary>
    public string[] SecretFileRoots { get; set; } = ["/run/secrets", "/var/run/secrets"];

    /// <summary>
    /// The environment variables an <c>env:</c> secret reference may name (a trailing or leading <c>*</c> matches any text):
    /// a reference's value is sent to the provider's URL, which an admin token chooses, so not <c>HOME</c> or a cloud token.
    /// </summary>
    public string[] SecretEnvironmentPatterns { get; set; } = ["GATEWAY_SECRET_*", "*_API_KEY"];

    /// <summary>Whether a provider's base URL may be a link-local or cloud metadata address (169.254.0.0/16, fe80::/10, fd00:ec2::254).</summary>
    public bool AllowLinkLocalUpstreams { get; set; }

    /// <summary>Model alias a key over its daily budget (or with a full hard cap) falls back to when it names no downgrade of its own.</summary>
    public string? DefaultDowngradeModel { get; set; }

    /// <summary>
    /// Time zone (IANA id, e.g. <c>Europe/Berlin</c>) whose midnight starts a budget day: daily budgets reset then, and
    /// usage rows, daily aggregates and reports count on days of this zone. Changing it applies to requests from then on.
    /// </summary>
    public string BudgetTimeZone { get; set; } = "UTC";

    /// <summary>
    /// Log each request's prompt and answer text (Information, category <c>Gateway.Bodies</c>) after redacting personal data and
    /// secrets (<see cref="Logging.Redactor"/>). Off by default: prompts and completions are never logged otherwise.
    /// </summary>
    public bool LogBodies { get; set; }

    /// <summary>
    /// The prompt-injection filter's gateway-wide action (off, flag or block). Keys and routing rules may set their own;
    /// the strictest of the three applies, so this is a floor they can raise but not lower.
    /// </summary>
    public Guards.InjectionAction InjectionFilter { get; set; } = Guards.InjectionAction.Off;

    /// <summary>
    /// Most <c>system</c>/<c>developer</c> messages a request may carry before the filter reports <c>system_override</c>
    /// (only where the filter is on).
    /// </summary>
    [Range(0, 100)]
    public int InjectionFilterMaxSystemMessages { get; set; } = 1;

    /// <summary>Where the Data Protection key ring (which encrypts stored provider secrets) lives.</summary>
    public string DataProtectionKeysDirectory { get; set; } = "data/keys";
}
