using System.Globalization;
using Gateway.Admin.Account;
using Gateway.Admin.Components.Pages.Providers.Components;
using Gateway.Admin.Components.Shared;
using Gateway.Core.Catalog;
using Microsoft.AspNetCore.Components;
using MudBlazor;

namespace Gateway.Admin.Components.Pages.Providers;

public sealed partial class ProvidersPage : IDisposable
{
    [Inject] private CatalogStore Catalog { get; set; } = default!;
    [Inject] private ConnectionTester Connections { get; set; } = default!;
    [Inject] private IDialogService Dialogs { get; set; } = default!;
    [Inject] private ISnackbar Snackbar { get; set; } = default!;
    [Inject] private AdminSession Session { get; set; } = default!;

    private IReadOnlyList<ProviderView> _providers = [];
    private IReadOnlyList<ModelView> _models = [];
    private bool _loading = true;
    private readonly Dictionary<string, ConnectionCheck> _checks = [];
    private readonly HashSet<string> _testing = [];
    private readonly LoadScope _loads = new();

    protected override Task OnInitializedAsync() => LoadAsync();

    private Task LoadAsync() => _loads.LatestAsync(async ct =>
    {
        var providers = await Catalog.ListProvidersAsync(ct);
        var models = await Catalog.ListModelsAsync(ct);
        ct.ThrowIfCancellationRequested();
        _providers = providers;
        _models = models;
        _loading = false;
    });

    private Task TestAsync(string provider) => _loads.AlongsideAsync(async ct =>
    {
        // A real call with the provider's secret: only for a user still current (not removed or disabled since the tab opened).
        if (await Session.ActorAsync() is null) return;
        _testing.Add(provider);
        _checks.Remove(provider);
        try
        {
            // One real call with its own short timeout (ConnectionTester.Timeout); the page shows the answer, never the secret.
            var check = await Connections.TestAsync(provider, ct);
            ct.ThrowIfCancellationRequested();
            _checks[provider] = check;
        }
        finally
        {
            if (!ct.IsCancellationRequested) _testing.Remove(provider);
        }
    });

    private async Task AddProviderAsync()
    {
        var dialog = await Dialogs.ShowAsync<ProviderEditorDialog>("Add a provider", Wide);
        if (await dialog.Result is not { Canceled: false, Data: ProviderView created }) return;
        Snackbar.Add($"Added {created.Name}. Test its connection, then add its models.", Severity.Success);
        await LoadAsync();
    }

    private async Task EditProviderAsync(ProviderView provider)
    {
        var parameters = new DialogParameters<ProviderEditorDialog> { { d => d.Existing, provider } };
        var dialog = await Dialogs.ShowAsync<ProviderEditorDialog>($"Edit {provider.Name}", parameters, Wide);
        if (await dialog.Result is not { Canceled: false }) return;
        _checks.Remove(provider.Name);
        Snackbar.Add($"Saved {provider.Name}; every gateway instance applies it within a second.", Severity.Success);
        await LoadAsync();
    }

    private async Task AddModelAsync(string? provider)
    {
        var parameters = new DialogParameters<ModelEditorDialog>
        {
            { d => d.Provider, provider },
            { d => d.Providers, [.. _providers.Select(p => p.Name)] },
            { d => d.Aliases, _models.Select(m => m.Alias).ToHashSet(StringComparer.Ordinal) },
        };
        var dialog = await Dialogs.ShowAsync<ModelEditorDialog>(provider is null ? "Add a model" : $"Add a model to {provider}", parameters, Wide);
        if (await dialog.Result is not { Canceled: false, Data: ModelView created }) return;
        Snackbar.Add($"Added {created.Alias}; clients can use it within a second.", Severity.Success);
        await LoadAsync();
    }

    private async Task EditModelAsync(ModelView model)
    {
        var parameters = new DialogParameters<ModelEditorDialog>
        {
            { d => d.Existing, model },
            { d => d.Providers, [.. _providers.Select(p => p.Name)] },
        };
        var dialog = await Dialogs.ShowAsync<ModelEditorDialog>($"Edit {model.Alias}", parameters, Wide);
        if (await dialog.Result is not { Canceled: false }) return;
        Snackbar.Add($"Saved {model.Alias}; every gateway instance applies it within a second.", Severity.Success);
        await LoadAsync();
    }

    private static string Usd(decimal amount) => amount.ToString("0.######", CultureInfo.InvariantCulture);

    private static string Tokens(int? count) => count?.ToString("N0", CultureInfo.InvariantCulture) ?? "";

    private static readonly DialogOptions Wide = new() { MaxWidth = MaxWidth.Medium, FullWidth = true, CloseOnEscapeKey = true };

    public void Dispose() => _loads.Dispose();
}
