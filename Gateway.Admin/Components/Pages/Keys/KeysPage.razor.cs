using Gateway.Admin.Account;
using Gateway.Admin.Components.Pages.Keys.Components;
using Gateway.Admin.Components.Shared;
using Gateway.Core.Catalog;
using Gateway.Core.Keys;
using Gateway.Core.Budgets;
using Microsoft.AspNetCore.Components;
using MudBlazor;

namespace Gateway.Admin.Components.Pages.Keys;

public partial class KeysPage
{
    [Inject] private KeyStore Keys { get; set; } = default!;
    [Inject] private CatalogStore Catalog { get; set; } = default!;
    [Inject] private BudgetCalendar Calendar { get; set; } = default!;
    [Inject] private TimeProvider Time { get; set; } = default!;
    [Inject] private IDialogService Dialogs { get; set; } = default!;
    [Inject] private ISnackbar Snackbar { get; set; } = default!;
    [Inject] private AdminSession Session { get; set; } = default!;

    private MudDataGrid<KeyListRow> _grid = default!;
    private string? _search;
    private string _status = "all";

    private async Task<GridData<KeyListRow>> LoadAsync(GridState<KeyListRow> state, CancellationToken ct)
    {
        var (items, total) = await Keys.SearchAsync(_search, _status == "all" ? null : _status, Calendar.Today,
            state.Page * state.PageSize, state.PageSize, ct);
        return new GridData<KeyListRow> { Items = items, TotalItems = total };
    }

    private async Task SearchAsync(string? text)
    {
        _search = text;
        await _grid.ReloadServerData();
    }

    private async Task StatusAsync(string status)
    {
        _status = status;
        await _grid.ReloadServerData();
    }

    private (string Label, Color Color) Status(KeyView key) =>
        key.RevokedAt is not null ? ("revoked", Color.Error)
        : key.ExpiresAt is { } expires && expires <= Time.GetUtcNow().UtcDateTime ? ("expired", Color.Warning)
        : ("active", Color.Success);

    private async Task<IReadOnlyList<string>> ModelAliasesAsync() =>
        [.. (await Catalog.ListModelsAsync(CancellationToken.None)).Where(m => m.Enabled).Select(m => m.Alias).Order(StringComparer.Ordinal)];

    private async Task IssueAsync()
    {
        var parameters = new DialogParameters<KeyEditorDialog> { { d => d.Models, await ModelAliasesAsync() } };
        var dialog = await Dialogs.ShowAsync<KeyEditorDialog>("Issue a key", parameters, Wide);
        if (await dialog.Result is not { Canceled: false, Data: CreatedKey created }) return;
        await ShowKeyAsync(created);
        await _grid.ReloadServerData();
    }

    private async Task EditAsync(KeyView key)
    {
        var parameters = new DialogParameters<KeyEditorDialog> { { d => d.Existing, key }, { d => d.Models, await ModelAliasesAsync() } };
        var dialog = await Dialogs.ShowAsync<KeyEditorDialog>($"Edit {key.Name}", parameters, Wide);
        if (await dialog.Result is not { Canceled: false }) return;
        Snackbar.Add($"Saved {key.Name}; every gateway instance applies it within a second.", Severity.Success);
        await _grid.ReloadServerData();
    }

    private async Task RotateAsync(KeyView key)
    {
        if (await Dialogs.ShowMessageBoxAsync("Rotate key", $"Give '{key.Name}' a new secret? The current one stops working within a second.",
                yesText: "Rotate", cancelText: "Cancel") != true) return;
        if (await Session.ActorAsync() is not { } actor) return;
        if (await Keys.RotateAsync(key.Id, actor, CancellationToken.None) is not { } rotated) return;
        await ShowKeyAsync(rotated);
        await _grid.ReloadServerData();
    }

    private async Task RevokeAsync(KeyView key)
    {
        if (await Dialogs.ShowMessageBoxAsync("Revoke key", $"Revoke '{key.Name}'? Every request with it is refused within a second. This cannot be undone.",
                yesText: "Revoke", cancelText: "Cancel") != true) return;
        if (await Session.ActorAsync() is not { } actor) return;
        await Keys.RevokeAsync(key.Id, actor, CancellationToken.None);
        Snackbar.Add($"Revoked {key.Name}", Severity.Info);
        await _grid.ReloadServerData();
    }

    private async Task ShowKeyAsync(CreatedKey key)
    {
        var parameters = new DialogParameters<ShownOnceDialog>
        {
            { d => d.Value, key.Key },
            { d => d.What, "key" },
            { d => d.Label, $"Key for {key.Name}" },
            { d => d.Notice, "Copy the key now: it is shown only this once. The gateway keeps only its hash." },
            { d => d.TestId, "new-key" },
        };
        var dialog = await Dialogs.ShowAsync<ShownOnceDialog>("Your new key", parameters, Wide);
        await dialog.Result;
    }

    private static readonly DialogOptions Wide = new() { MaxWidth = MaxWidth.Medium, FullWidth = true, CloseOnEscapeKey = true };
}
