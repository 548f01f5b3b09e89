using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gateway.Core.Routing;

/// <summary>
/// What a rule matches (snake_case JSON in <c>routing_rules.match</c>). Every condition given must
/// hold; a rule with no conditions matches every request.
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record RuleMatch
{
    /// <summary>The model alias the client asked for (any of these).</summary>
    public IReadOnlyList<string>? Models { get; init; }
    public IReadOnlyList<Guid>? KeyIds { get; init; }
    /// <summary>Any of the key's tags.</summary>
    public IReadOnlyList<string>? KeyTags { get; init; }
    /// <summary>The request's <c>user</c> field (any of these).</summary>
    public IReadOnlyList<string>? Users { get; init; }
    /// <summary>Request headers that must have exactly these values (names case-insensitive).</summary>
    public IReadOnlyDictionary<string, string>? Headers { get; init; }
    /// <summary>Entries of the request's <c>metadata</c> object that must have exactly these values.</summary>
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }
    /// <summary>Prompt size, estimated with the o200k tokenizer.</summary>
    public int? MinPromptTokens { get; init; }
    public int? MaxPromptTokens { get; init; }
    /// <summary>The request's output limit (<c>max_completion_tokens</c> or <c>max_tokens</c>); a request without one never matches these.</summary>
    public int? MinMaxTokens { get; init; }
    public int? MaxMaxTokens { get; init; }
    public bool? HasTools { get; init; }
    public bool? HasImages { get; init; }
    /// <summary>A .NET regular expression searched in the prompt text (case-insensitive, matched in linear time).</summary>
    public string? PromptRegex { get; init; }
    /// <summary>Any of these words or phrases in the prompt text (case-insensitive).</summary>
    public IReadOnlyList<string>? PromptKeywords { get; init; }
}

/// <summary>A target model and its share of traffic (weights are relative: 90 and 10 split 90/10).</summary>
public sealed record RuleTarget(string Model, int Weight = 1);

/// <summary>A routing rule as stored and as the admin API shows it.</summary>
// Settable, not init: the source-generated reader passes every init-only property to the initializer, so a field missing
// from the JSON would be null instead of its default below.
public sealed record RoutingRule
{
    public Guid Id { get; init; }
    public string Name { get; set; } = "";
    /// <summary>Lower runs first.</summary>
    public int Priority { get; init; }
    public bool Enabled { get; set; } = true;
    public RuleMatch Match { get; set; } = new();
    public IReadOnlyList<RuleTarget> Targets { get; set; } = [];
    /// <summary>Aliases tried after the chosen target; empty: the target model's own fallbacks.</summary>
    public IReadOnlyList<string> Fallbacks { get; set; } = [];
    /// <summary>
    /// Where the rule's requests go once the key is over its daily budget (or its hard cap has no room for them), for a key
    /// with no <c>downgrade_model</c> of its own; before <c>Gateway:DefaultDowngradeModel</c>.
    /// </summary>
    public string? DowngradeModel { get; init; }
    /// <summary>
    /// The prompt-injection filter for the rule's requests: <c>off</c>, <c>flag</c> or <c>block</c> (null: not set). The strictest of
    /// this, the key's and <c>Gateway:InjectionFilter</c> applies, so a rule can make the filter stricter, never looser.
    /// </summary>
    public string? InjectionFilter { get; init; }
    public DateTime CreatedAt { get; init; }
    public DateTime UpdatedAt { get; init; }

}

/// <summary>A rule's match and targets as their columns keep them: snake_case, nulls left out.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(RuleMatch))]
[JsonSerializable(typeof(List<RuleTarget>))]
internal sealed partial class RoutingJson : JsonSerializerContext;
