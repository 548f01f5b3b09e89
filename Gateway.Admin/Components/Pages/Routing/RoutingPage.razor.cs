using System.Globalization;
using Gateway.Admin.Account;
using Gateway.Admin.Components.Pages.Routing.Components;
using Gateway.Admin.Components.Shared;
using Gateway.Core.Keys;
using Gateway.Core.Routing;
using Microsoft.AspNetCore.Components;
using MudBlazor;

namespace Gateway.Admin.Components.Pages.Routing;

public sealed partial class RoutingPage : IDisposable
{
    [Inject] private RuleStore Store { get; set; } = default!;
    [Inject] private RuleBook Book { get; set; } = default!;
    [Inject] private KeyStore KeyStore { get; set; } = default!;
    [Inject] private IDialogService Dialogs { get; set; } = default!;
    [Inject] private ISnackbar Snackbar { get; set; } = default!;
    [Inject] private AdminSession Session { get; set; } = default!;

    private List<RoutingRule> _rules = [];
    private IReadOnlyList<KeyView> _keys = [];
    private bool _keysLoaded;
    private bool _loading = true;
    private bool _busy;
    private readonly LoadScope _loads = new();

    protected override Task OnInitializedAsync() => LoadAsync(reloadBook: false, withKeys: true);

    /// <summary>
    /// Reads the rules in the order the gateway tries them. After a change this instance's rule book is reloaded at once, so
    /// the tester below shows the change (NOTIFY would bring it within a second anyway).
    /// </summary>
    private Task LoadAsync(bool reloadBook = true, bool withKeys = false) => _loads.LatestAsync(async ct =>
    {
        // Until a load has read them (the first one may be superseded by a reload before it gets there).
        if (withKeys || !_keysLoaded)
        {
            var keys = await KeyStore.ListAsync(ct);
            ct.ThrowIfCancellationRequested();
            _keys = [.. keys.Where(k => k.RevokedAt is null).OrderBy(k => k.Name, StringComparer.Ordinal)];
            _keysLoaded = true;
        }
        if (reloadBook) await Book.ReloadAsync(ct);
        var rules = await Store.ListAsync(ct);
        ct.ThrowIfCancellationRequested();
        _rules = [.. rules];
        _loading = false;
    });

    private int IndexOf(RoutingRule rule) => _rules.FindIndex(r => r.Name == rule.Name);

    private async Task AddAsync()
    {
        var next = _rules.Count == 0 ? 10 : _rules.Max(r => r.Priority) + 10;
        var parameters = new DialogParameters<RuleEditorDialog> { { d => d.Priority, next } };
        var dialog = await Dialogs.ShowAsync<RuleEditorDialog>("Add a routing rule", parameters, Wide);
        if (await dialog.Result is not { Canceled: false, Data: RoutingRule saved }) return;
        Snackbar.Add($"Added {saved.Name}; every gateway instance applies it within a second.", Severity.Success);
        await LoadAsync();
    }

    private async Task EditAsync(RoutingRule rule)
    {
        var parameters = new DialogParameters<RuleEditorDialog> { { d => d.Existing, rule } };
        var dialog = await Dialogs.ShowAsync<RuleEditorDialog>($"Edit {rule.Name}", parameters, Wide);
        if (await dialog.Result is not { Canceled: false }) return;
        Snackbar.Add($"Saved {rule.Name}; every gateway instance applies it within a second.", Severity.Success);
        await LoadAsync();
    }

    /// <summary>
    /// Moves a rule one place by giving the two rules each other's priority. When either priority is shared (equal priorities
    /// order by name) a swap could move nothing, or jump past other rules, so then every rule is renumbered 10, 20, 30… in the
    /// new order. Each changed rule is one <c>route.update</c> in the audit log.
    /// </summary>
    private async Task MoveAsync(int index, int step)
    {
        var other = index + step;
        if (_busy || index < 0 || other < 0 || other >= _rules.Count) return;
        _busy = true;
        try
        {
            if (await Session.ActorAsync() is not { } actor) return;
            var order = _rules.ToList();
            (order[index], order[other]) = (order[other], order[index]);
            var priorities = _rules.Select(r => r.Priority).ToList();
            var swapOnly = priorities.Count(p => p == priorities[index]) == 1 && priorities.Count(p => p == priorities[other]) == 1;
            var wanted = swapOnly ? priorities : [.. Enumerable.Range(1, order.Count).Select(i => i * 10)];
            foreach (var (rule, priority) in order.Zip(wanted))
            {
                if (rule.Priority != priority) await Store.UpsertAsync(rule.Name, rule with { Priority = priority }, actor, CancellationToken.None);
            }
            await LoadAsync();
        }
        finally
        {
            _busy = false;
        }
    }

    private async Task SetEnabledAsync(RoutingRule rule, bool enabled)
    {
        if (_busy) return;
        _busy = true;
        try
        {
            if (await Session.ActorAsync() is not { } actor) return;
            await Store.UpsertAsync(rule.Name, rule with { Enabled = enabled }, actor, CancellationToken.None);
            Snackbar.Add($"{rule.Name} {(enabled ? "enabled" : "disabled")}.", Severity.Info);
            await LoadAsync();
        }
        finally
        {
            _busy = false;
        }
    }

    private async Task DeleteAsync(RoutingRule rule)
    {
        if (await Dialogs.ShowMessageBoxAsync("Delete rule", $"Delete '{rule.Name}'? Requests it matched go to the next matching rule, or their own alias.",
                yesText: "Delete", cancelText: "Cancel") != true) return;
        if (await Session.ActorAsync() is not { } actor) return;
        await Store.DeleteAsync(rule.Name, actor, CancellationToken.None);
        Snackbar.Add($"Deleted {rule.Name}.", Severity.Info);
        await LoadAsync();
    }

    /// <summary>The conditions in a line, as the README's table names them.</summary>
    private static string Describe(RuleMatch m)
    {
        var parts = new List<string>();
        void Items<T>(string name, IEnumerable<T>? items)
        {
            if (items?.Any() == true) parts.Add($"{name}: {string.Join(", ", items)}");
        }
        void Pairs(string name, IReadOnlyDictionary<string, string>? pairs)
        {
            if (pairs is { Count: > 0 }) parts.Add($"{name}: {string.Join(", ", pairs.Select(p => $"{p.Key}={p.Value}"))}");
        }
        void Range(string name, int? min, int? max)
        {
            if (min is null && max is null) return;
            parts.Add(min is not null && max is not null ? $"{name} {min}–{max}"
                : min is not null ? $"{name} ≥ {min.Value.ToString(CultureInfo.InvariantCulture)}" : $"{name} ≤ {max!.Value.ToString(CultureInfo.InvariantCulture)}");
        }
        Items("models", m.Models);
        Items("key tags", m.KeyTags);
        Items("keys", m.KeyIds);
        Items("users", m.Users);
        Pairs("headers", m.Headers);
        Pairs("metadata", m.Metadata);
        Range("prompt tokens", m.MinPromptTokens, m.MaxPromptTokens);
        Range("max_tokens", m.MinMaxTokens, m.MaxMaxTokens);
        if (m.HasTools is { } tools) parts.Add(tools ? "with tools" : "without tools");
        if (m.HasImages is { } images) parts.Add(images ? "with images" : "without images");
        if (m.PromptRegex is { } regex) parts.Add($"prompt ~ /{regex}/");
        Items("keywords", m.PromptKeywords);
        return parts.Count == 0 ? "every request" : string.Join("; ", parts);
    }

    private static readonly DialogOptions Wide = new() { MaxWidth = MaxWidth.Large, FullWidth = true, CloseOnEscapeKey = true };

    public void Dispose() => _loads.Dispose();
}
