using Gateway.Core.Limits;

namespace Gateway.Core.Pipeline;

/// <summary>
/// What the pipeline learnt of a request that its caller should be told, gathered step by step: a front door turns these into its
/// response headers (the OpenAI doors' <c>x-gateway-*</c> and <c>x-ratelimit-*</c>). A fact a step never reached stays null.
/// </summary>
public sealed class PipelineFacts
{
    /// <summary>Step 3: the key's per-minute limits and what is left of them (null when the key has none).</summary>
    public RateLimitState? Limits { get; internal set; }

    /// <summary>Step 5: the prompt-injection filter flagged the request and let it through.</summary>
    public bool InjectionFlagged { get; internal set; }

    /// <summary>Step 6: <see cref="CacheHit"/>, <see cref="CacheMiss"/>, or null when the request was not looked up.</summary>
    public string? Cache { get; internal set; }

    /// <summary>Step 7: what is left of the key's daily budget, when it has one.</summary>
    public decimal? BudgetRemaining { get; internal set; }

    /// <summary>Step 7: the alias asked for when the budget sent the request to a cheaper model.</summary>
    public string? DowngradedFrom { get; internal set; }

    /// <summary>Step 7: the routing rule that chose the model, once the request is going to a provider.</summary>
    public string? Rule { get; internal set; }

    /// <summary>Step 8: upstream calls made (null when no provider was called).</summary>
    public int? Attempts { get; internal set; }

    /// <summary>Step 8: a fallback candidate served the request.</summary>
    public bool Fallback { get; internal set; }

    /// <summary>Steps 6 and 8: the provider that answered (a cached answer's original provider).</summary>
    public string? Provider { get; private set; }

    /// <summary>Steps 6 and 8: the upstream model that answered.</summary>
    public string? Model { get; private set; }

    /// <summary>The answer came from the response cache.</summary>
    public const string CacheHit = "hit";

    /// <summary>The request was cacheable and not in the cache.</summary>
    public const string CacheMiss = "miss";

    internal void Served(string provider, string model) => (Provider, Model) = (provider, model);
}
