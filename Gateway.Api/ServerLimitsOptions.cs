using System.ComponentModel.DataAnnotations;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Gateway.Api;

/// <summary>
/// Kestrel's limits on headers and slow clients (section <c>Gateway:Server</c>; the defaults are Kestrel's own).
/// Headers over a limit get Kestrel's bare 431 (414 for the request line) before any of our code runs; a body sent
/// slower than the minimum rate, once its grace period is over, is cut with a 408 (metered, OpenAI-shaped).
/// </summary>
internal sealed class ServerLimitsOptions
{
    public const string SectionName = "Gateway:Server";

    [Range(1024, 1024 * 1024)]
    public int MaxRequestHeadersTotalBytes { get; set; } = 32 * 1024;

    [Range(1, 10_000)]
    public int MaxRequestHeaderCount { get; set; } = 100;

    [Range(256, 1024 * 1024)]
    public int MaxRequestLineBytes { get; set; } = 8 * 1024;

    /// <summary>Time a client gets to send all its request headers (slow-loris headers).</summary>
    [Range(1, 3600)]
    public int RequestHeadersTimeoutSeconds { get; set; } = 30;

    /// <summary>Slowest average body upload accepted once the grace period is over (slow-loris bodies); 0 turns the check off.</summary>
    [Range(0, 100 * 1024 * 1024)]
    public int MinRequestBodyBytesPerSecond { get; set; } = 240;

    /// <summary>Time a body gets before its rate counts (Kestrel wants more than a second: it checks once a second).</summary>
    [Range(2, 3600)]
    public int MinRequestBodyGraceSeconds { get; set; } = 5;

    /// <summary>How long an idle keep-alive connection stays open.</summary>
    [Range(1, 86_400)]
    public int KeepAliveTimeoutSeconds { get; set; } = 130;

    public void ApplyTo(KestrelServerLimits limits)
    {
        limits.MaxRequestHeadersTotalSize = MaxRequestHeadersTotalBytes;
        limits.MaxRequestHeaderCount = MaxRequestHeaderCount;
        limits.MaxRequestLineSize = MaxRequestLineBytes;
        limits.RequestHeadersTimeout = TimeSpan.FromSeconds(RequestHeadersTimeoutSeconds);
        limits.MinRequestBodyDataRate = MinRequestBodyBytesPerSecond == 0
            ? null
            : new MinDataRate(MinRequestBodyBytesPerSecond, TimeSpan.FromSeconds(MinRequestBodyGraceSeconds));
        limits.KeepAliveTimeout = TimeSpan.FromSeconds(KeepAliveTimeoutSeconds);
    }
}

/// <summary>Data-annotation checks of <see cref="ServerLimitsOptions"/>, generated at build time (Native AOT).</summary>
[Microsoft.Extensions.Options.OptionsValidator]
internal sealed partial class ServerLimitsOptionsValidator : Microsoft.Extensions.Options.IValidateOptions<ServerLimitsOptions>;
