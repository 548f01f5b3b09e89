using System.ComponentModel.DataAnnotations;

namespace Gateway.Core.Caching;

/// <summary>Where the response cache lives (section <c>Gateway:Cache</c>).</summary>
public sealed class CacheOptions
{
    public const string SectionName = "Gateway:Cache";

    /// <summary>
    /// <c>postgres</c> (the default: an UNLOGGED table every instance shares) or <c>redis</c> (the Redis of <c>ConnectionStrings:Redis</c>,
    /// which must be set: entries expire on their own and a lookup never touches PostgreSQL). Either way, every instance shares it.
    /// </summary>
    [RegularExpression("^(postgres|redis)$", ErrorMessage = "Gateway:Cache:Store must be postgres or redis.")]
    public string Store { get; set; } = "postgres";

    /// <summary>Whether entries live in Redis.</summary>
    public bool InRedis => Store == "redis";
}
