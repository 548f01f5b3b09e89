using FluentValidation.Results;
using Gateway.Core.Routing;

namespace Gateway.Admin.Components.Pages.Routing;

/// <summary>
/// The rule editor's fields: lists are comma-separated text, headers and metadata one <c>name: value</c> per line, each
/// target a row. The rules are the admin API's (<see cref="RoutingRuleValidator"/>); <see cref="Problems"/> puts each
/// problem under its field.
/// </summary>
public sealed class RuleForm
{
    /// <summary>A target row: a model alias and its relative weight.</summary>
    public sealed class Target
    {
        public string Model { get; set; } = "";
        public int Weight { get; set; } = 1;
    }

    /// <summary>A yes/no condition: <c>any</c> leaves it out.</summary>
    public const string Any = "any", Yes = "yes", No = "no";

    public string Name { get; set; } = "";
    public int Priority { get; set; } = 100;
    public bool Enabled { get; set; } = true;

    public string? Models { get; set; }
    public string? KeyTags { get; set; }
    public string? KeyIds { get; set; }
    public string? Users { get; set; }
    public string? Headers { get; set; }
    public string? Metadata { get; set; }
    public int? MinPromptTokens { get; set; }
    public int? MaxPromptTokens { get; set; }
    public int? MinMaxTokens { get; set; }
    public int? MaxMaxTokens { get; set; }
    public string HasTools { get; set; } = Any;
    public string HasImages { get; set; } = Any;
    public string? PromptRegex { get; set; }
    public string? PromptKeywords { get; set; }

    public List<Target> Targets { get; } = [new()];
    public string? Fallbacks { get; set; }
    public string? DowngradeModel { get; set; }
    /// <summary>off, flag or block; null leaves the filter to the gateway and the key.</summary>
    public string? InjectionFilter { get; set; }

    public static RuleForm From(RoutingRule rule)
    {
        var m = rule.Match;
        var form = new RuleForm
        {
            Name = rule.Name,
            Priority = rule.Priority,
            Enabled = rule.Enabled,
            Models = Join(m.Models),
            KeyTags = Join(m.KeyTags),
            KeyIds = Join(m.KeyIds?.Select(id => id.ToString())),
            Users = Join(m.Users),
            Headers = Lines(m.Headers),
            Metadata = Lines(m.Metadata),
            MinPromptTokens = m.MinPromptTokens,
            MaxPromptTokens = m.MaxPromptTokens,
            MinMaxTokens = m.MinMaxTokens,
            MaxMaxTokens = m.MaxMaxTokens,
            HasTools = YesNo(m.HasTools),
            HasImages = YesNo(m.HasImages),
            PromptRegex = m.PromptRegex,
            PromptKeywords = Join(m.PromptKeywords),
            Fallbacks = Join(rule.Fallbacks),
            DowngradeModel = rule.DowngradeModel,
            InjectionFilter = rule.InjectionFilter,
        };
        form.Targets.Clear();
        form.Targets.AddRange(rule.Targets.Select(t => new Target { Model = t.Model, Weight = t.Weight }));
        if (form.Targets.Count == 0) form.Targets.Add(new Target());
        return form;
    }

    /// <summary>The rule this form makes, or the problems only the form can see (unreadable key ids or header lines), by field.</summary>
    public (RoutingRule? Rule, Dictionary<string, string> Problems) ToRule()
    {
        var problems = new Dictionary<string, string>();
        var keyIds = new List<Guid>();
        foreach (var text in Split(KeyIds))
        {
            if (Guid.TryParse(text, out var id)) keyIds.Add(id);
            else problems.TryAdd(nameof(KeyIds), $"'{text}' is not a key id.");
        }
        var headers = Pairs(Headers, nameof(Headers), problems);
        var metadata = Pairs(Metadata, nameof(Metadata), problems);
        if (problems.Count > 0) return (null, problems);
        return (new RoutingRule
        {
            Name = Name.Trim(),
            Priority = Priority,
            Enabled = Enabled,
            Match = new RuleMatch
            {
                Models = OrNull(Split(Models)),
                KeyIds = keyIds.Count > 0 ? keyIds : null,
                KeyTags = OrNull(Split(KeyTags)),
                Users = OrNull(Split(Users)),
                Headers = headers,
                Metadata = metadata,
                MinPromptTokens = MinPromptTokens,
                MaxPromptTokens = MaxPromptTokens,
                MinMaxTokens = MinMaxTokens,
                MaxMaxTokens = MaxMaxTokens,
                HasTools = Bool(HasTools),
                HasImages = Bool(HasImages),
                PromptRegex = string.IsNullOrWhiteSpace(PromptRegex) ? null : PromptRegex,
                PromptKeywords = OrNull(Split(PromptKeywords)),
            },
            // Blank rows are left out; a rule with none is refused by the validator.
            Targets = [.. Targets.Where(t => !string.IsNullOrWhiteSpace(t.Model)).Select(t => new RuleTarget(t.Model.Trim(), t.Weight))],
            Fallbacks = Split(Fallbacks),
            DowngradeModel = string.IsNullOrWhiteSpace(DowngradeModel) ? null : DowngradeModel.Trim(),
            InjectionFilter = string.IsNullOrWhiteSpace(InjectionFilter) ? null : InjectionFilter,
        }, problems);
    }

    /// <summary>
    /// Each validation problem under its field: <c>Match.PromptRegex</c> → <c>PromptRegex</c>, <c>Targets[1].Weight</c> stays (its
    /// row shows it); the first problem per field.
    /// </summary>
    public static Dictionary<string, string> Problems(IEnumerable<ValidationFailure> failures) =>
        failures.GroupBy(f => f.PropertyName.StartsWith("Match.", StringComparison.Ordinal) ? f.PropertyName["Match.".Length..] : f.PropertyName)
            .ToDictionary(g => g.Key, g => g.First().ErrorMessage);

    private static List<string> Split(string? list) =>
        list is null ? [] : [.. list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];

    private static List<string>? OrNull(List<string> list) => list.Count > 0 ? list : null;

    private static string? Join(IEnumerable<string>? items) => items is null ? null : string.Join(", ", items);

    private static string? Lines(IReadOnlyDictionary<string, string>? pairs) =>
        pairs is null ? null : string.Join("\n", pairs.Select(p => $"{p.Key}: {p.Value}"));

    private static Dictionary<string, string>? Pairs(string? text, string field, Dictionary<string, string> problems)
    {
        var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in (text ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                problems.TryAdd(field, $"Write one 'name: value' per line ('{line}').");
                continue;
            }
            pairs[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }
        return pairs.Count > 0 ? pairs : null;
    }

    private static string YesNo(bool? value) => value switch { true => Yes, false => No, null => Any };

    private static bool? Bool(string value) => value switch { Yes => true, No => false, _ => null };
}
