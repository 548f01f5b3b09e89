using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Dapper;
using Gateway.Core.Catalog;
using Gateway.Core.Keys;
using Gateway.Core.Tokens;
using Gateway.Core.Wire;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Gateway.Core.Routing;

/// <summary>
/// Where a request goes: its candidate chain, the rule that chose it (null: the alias itself), and that rule's
/// downgrade target and prompt-injection filter action.
/// </summary>
public sealed record RouteDecision(IReadOnlyList<ModelRoute> Chain, string? Rule, string? DowngradeModel = null,
    Guards.InjectionAction? InjectionFilter = null)
{
    public ModelRoute First => Chain[0];
}

/// <summary>
/// The routing rules, in memory and ordered by priority, swapped atomically on NOTIFY. Routing a
/// request costs no database round trip; the prompt's text and token count are only computed when a
/// rule asks for them.
/// </summary>
public sealed partial class RuleBook(NpgsqlDataSource db, ModelCatalog catalog, TokenCounter tokens, ILogger<RuleBook> logger)
{

    /// <summary>Linear-time matching (no backtracking blow-up on the hot path); patterns with backreferences or lookarounds are refused.</summary>
    internal const RegexOptions Options = RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.NonBacktracking;

    private IReadOnlyList<CompiledRule> _rules = [];

    public int Count => _rules.Count;

    public async Task ReloadAsync(CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<RuleRow>($"{RuleRow.Select} ORDER BY priority, name", ct);
        var compiled = new List<CompiledRule>();
        foreach (var row in rows)
        {
            if (!row.Enabled) continue;
            try
            {
                compiled.Add(new CompiledRule(row.ToRule()));
            }
            catch (Exception ex) when (ex is JsonException or ArgumentException)
            {
                Log.RuleSkipped(logger, row.Name, ex.Message);
            }
        }
        Interlocked.Exchange(ref _rules, compiled);
    }

    /// <summary>The first matching rule's choice, or null when no rule matches.</summary>
    public RouteDecision? Route(GatewayKey key, ChatCompletionRequest request, Func<string, string?> header)
    {
        var rules = _rules;
        if (rules.Count == 0) return null;
        var facts = new RequestFacts(request, tokens);
        foreach (var rule in rules)
        {
            if (!rule.Matches(key, request, header, facts)) continue;
            var target = catalog.Find(rule.Pick(request.User ?? key.Id.ToString()));
            if (target is null)
            {
                Log.TargetMissing(logger, rule.Rule.Name);
                continue;
            }
            // A key limited to some models is only ever served those, whatever a rule says.
            if (!key.MayUse(target.Alias)) continue;
            var chain = catalog.Chain(target, rule.Rule.Fallbacks.Count > 0 ? rule.Rule.Fallbacks : null).Where(c => key.MayUse(c.Alias)).ToList();
            return new RouteDecision(chain, rule.Rule.Name, rule.Rule.DowngradeModel, rule.InjectionFilter);
        }
        return null;
    }

    /// <summary>What rules may ask of a request, each computed at most once.</summary>
    private sealed class RequestFacts(ChatCompletionRequest request, TokenCounter tokens)
    {
        private string? _text;
        private int? _tokens;

        public string Text => _text ??= string.Join("\n", request.Messages!.Select(m => m.Text()));

        public int PromptTokens => _tokens ??= tokens.CountPrompt(request.Messages!);

        public bool HasImages => request.Messages!.Any(m => m.Content is { ValueKind: JsonValueKind.Array } parts
            && parts.EnumerateArray().Any(p => p.ValueKind == JsonValueKind.Object && p.TryGetProperty("type", out var t) && t.ValueEqualsImage()));
    }

    private sealed class CompiledRule
    {
        private readonly Regex? _regex;
        private readonly string[] _keywords;
        private readonly int _totalWeight;

        public CompiledRule(RoutingRule rule)
        {
            Rule = rule;
            _regex = rule.Match.PromptRegex is { } pattern
                // No match timeout: NonBacktracking is linear in the input already, and in .NET 10 a timeout makes it
                // report "no match" on inputs of ~100k characters (dotnet/runtime behaviour reproduced here).
                ? new Regex(pattern, Options)
                : null;
            _keywords = rule.Match.PromptKeywords?.Where(k => k.Length > 0).ToArray() ?? [];
            _totalWeight = rule.Targets.Sum(t => t.Weight);
            InjectionFilter = Guards.InjectionFilter.ParseAction(rule.InjectionFilter);
        }

        public RoutingRule Rule { get; }

        public Guards.InjectionAction? InjectionFilter { get; }

        public bool Matches(GatewayKey key, ChatCompletionRequest request, Func<string, string?> header, RequestFacts facts)
        {
            var m = Rule.Match;
            if (m.Models is { Count: > 0 } models && !models.Contains(request.Model!)) return false;
            if (m.KeyIds is { Count: > 0 } ids && !ids.Contains(key.Id)) return false;
            if (m.KeyTags is { Count: > 0 } tags && !tags.Any(key.Tags.Contains)) return false;
            if (m.Users is { Count: > 0 } users && (request.User is null || !users.Contains(request.User))) return false;
            if (m.Headers is { Count: > 0 } headers && !headers.All(h => header(h.Key) == h.Value)) return false;
            if (m.Metadata is { Count: > 0 } metadata && !metadata.All(e => Metadata(request, e.Key) == e.Value)) return false;
            if (m.HasTools is { } tools && tools != (request.Tools is { ValueKind: JsonValueKind.Array } list && list.GetArrayLength() > 0)) return false;
            var maxTokens = request.MaxCompletionTokens ?? request.MaxTokens;
            if (m.MinMaxTokens is { } minMax && !(maxTokens >= minMax)) return false;
            if (m.MaxMaxTokens is { } maxMax && !(maxTokens <= maxMax)) return false;
            if (m.HasImages is { } images && images != facts.HasImages) return false;
            if (_keywords.Length > 0 && !_keywords.Any(k => facts.Text.Contains(k, StringComparison.OrdinalIgnoreCase))) return false;
            if (_regex is not null && !_regex.IsMatch(facts.Text)) return false;
            if (m.MinPromptTokens is { } minTokens && facts.PromptTokens < minTokens) return false;
            if (m.MaxPromptTokens is { } maxTokensPrompt && facts.PromptTokens > maxTokensPrompt) return false;
            return true;
        }

        /// <summary>A weighted pick, sticky per end user (or key): the same user gets the same side of an A/B split on every instance.</summary>
        public string Pick(string stickyBy)
        {
            if (Rule.Targets.Count == 1) return Rule.Targets[0].Model;
            var hash = SHA256.HashData(Encoding.UTF8.GetBytes(Rule.Name + "\n" + stickyBy));
            var bucket = (int)(BitConverter.ToUInt32(hash, 0) % (uint)_totalWeight);
            foreach (var target in Rule.Targets)
            {
                if (bucket < target.Weight) return target.Model;
                bucket -= target.Weight;
            }
            return Rule.Targets[^1].Model;
        }


        private static string? Metadata(ChatCompletionRequest request, string name) =>
            request.Extra is { } extra && extra.TryGetValue("metadata", out var metadata) && metadata.ValueKind == JsonValueKind.Object
            && metadata.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
    }


    private static partial class Log
    {
        [LoggerMessage(EventId = 1401, Level = LogLevel.Warning, Message = "Routing rule {Rule} is skipped: {Problem}")]
        public static partial void RuleSkipped(ILogger logger, string rule, string problem);

        [LoggerMessage(EventId = 1402, Level = LogLevel.Warning, Message = "Routing rule {Rule} matched but its target model is not enabled; trying the next rule")]
        public static partial void TargetMissing(ILogger logger, string rule);
    }
}

internal static class JsonElementExtensions
{
    public static bool ValueEqualsImage(this JsonElement type) => type.ValueKind == JsonValueKind.String && type.ValueEquals("image_url");
}
