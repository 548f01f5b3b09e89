namespace Gateway.Core.Caching;

/// <summary>
/// Which keys share a key's cached answers (the key's <c>cache_scope</c>). A key reads only entries written under its own
/// scope: a <see cref="Global"/> key never sees a <see cref="Key"/>-scoped entry, nor the reverse.
/// </summary>
public enum CacheScope
{
    /// <summary>The key's own entries only (the default): a hit tells no tenant what another asked.</summary>
    Key,

    /// <summary>
    /// Shared with the keys that also chose <c>tags</c> and carry exactly the same set of tags (a team). Equal sets, not one
    /// tag in common: keys of two teams that overlap only partly (<c>team-a, shared</c> and <c>team-b, shared</c>) stay apart.
    /// </summary>
    Tags,

    /// <summary>Shared with every key that chose <c>global</c>.</summary>
    Global,
}
