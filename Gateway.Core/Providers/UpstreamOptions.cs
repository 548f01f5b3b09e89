using System.ComponentModel.DataAnnotations;

namespace Gateway.Core.Providers;

/// <summary>Settings for calls to providers (section <c>Gateway:Upstream</c>).</summary>
public sealed class UpstreamOptions
{
    public const string SectionName = "Gateway:Upstream";

    /// <summary>Longest a whole upstream call (a full stream included) may take.</summary>
    [Range(1, 3600)]
    public int TimeoutSeconds { get; set; } = 600;

    public TimeSpan Timeout => TimeSpan.FromSeconds(TimeoutSeconds);

    /// <summary>The model's own deadline (<c>timeout_ms</c>) when it has one, else <see cref="Timeout"/>.</summary>
    public TimeSpan TimeoutFor(Catalog.ModelRoute route) => route.TimeoutMs is { } ms ? TimeSpan.FromMilliseconds(ms) : Timeout;
}
