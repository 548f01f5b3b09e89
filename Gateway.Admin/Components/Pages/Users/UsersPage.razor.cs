using System.Globalization;
using Gateway.Admin.Account;
using Gateway.Admin.Components.Pages.Users.Components;
using Gateway.Admin.Components.Shared;
using Microsoft.AspNetCore.Components;
using Microsoft.Extensions.Options;
using MudBlazor;

namespace Gateway.Admin.Components.Pages.Users;

public partial class UsersPage
{
    [Inject] private AdminUsers Users { get; set; } = default!;
    [Inject] private AdminSession Session { get; set; } = default!;
    [Inject] private IOptions<AdminOptions> Options { get; set; } = default!;
    [Inject] private IDialogService Dialogs { get; set; } = default!;
    [Inject] private ISnackbar Snackbar { get; set; } = default!;

    private MudDataGrid<AdminUserRow> _grid = default!;
    private string? _search;

    /// <summary>"within 30 seconds": when the user's open sessions end.</summary>
    private string Within => $"within {Options.Value.SecurityStampIntervalSeconds} seconds";

    private async Task<GridData<AdminUserRow>> LoadAsync(GridState<AdminUserRow> state, CancellationToken ct)
    {
        var (items, total) = await Users.SearchAsync(_search, state.Page * state.PageSize, state.PageSize, ct);
        return new GridData<AdminUserRow> { Items = items, TotalItems = total };
    }

    private async Task SearchAsync(string? text)
    {
        _search = text;
        await _grid.ReloadServerData();
    }

    private static (string Label, Color Color) Status(AdminUserRow user) =>
        user.Disabled ? ("disabled", Color.Error)
        : user.LockedUntil is { } until ? ($"locked until {until.UtcDateTime.ToString("HH:mm", CultureInfo.InvariantCulture)}", Color.Warning)
        : ("active", Color.Success);

    private async Task AddAsync()
    {
        var dialog = await Dialogs.ShowAsync<UserEditorDialog>("Add a user", Narrow);
        if (await dialog.Result is not { Canceled: false, Data: UserEditorDialog.Added added }) return;
        await ShowPasswordAsync(added.Email, added.Password);
        await _grid.ReloadServerData();
    }

    private async Task ChangeRoleAsync(AdminUserRow user)
    {
        var parameters = new DialogParameters<UserEditorDialog> { { d => d.Existing, user } };
        var dialog = await Dialogs.ShowAsync<UserEditorDialog>($"Change the role of {user.Email}", parameters, Narrow);
        if (await dialog.Result is not { Canceled: false, Data: string role } || role == user.Role) return;
        Snackbar.Add($"{user.Email} is now {role}; their open sessions end {Within}.", Severity.Success);
        await _grid.ReloadServerData();
    }

    private async Task ResetPasswordAsync(AdminUserRow user)
    {
        if (!await ConfirmAsync("Reset password", $"Give {user.Email} a new password? The current one stops working and their open sessions end {Within}.",
                "Reset")) return;
        if (await Session.ActorAsync() is not { } actor) return;
        var (password, error) = await Users.ResetPasswordAsync(actor, user.Id, CancellationToken.None);
        if (await RefusedAsync(error)) return;
        await ShowPasswordAsync(user.Email, password!);
        await _grid.ReloadServerData();
    }

    private Task UnlockAsync(AdminUserRow user) =>
        ChangeAsync(user, null, Users.UnlockAsync, $"Unlocked {user.Email}.");

    private Task EnableAsync(AdminUserRow user) =>
        ChangeAsync(user, null, Users.EnableAsync, $"Enabled {user.Email}: they can sign in again.");

    private Task DisableAsync(AdminUserRow user) =>
        ChangeAsync(user, ("Disable user", $"Disable {user.Email}? They cannot sign in until enabled, and their open sessions end {Within}.", "Disable"),
            Users.DisableAsync, $"Disabled {user.Email}.");

    private Task RemoveAsync(AdminUserRow user) =>
        ChangeAsync(user, ("Remove user", $"Remove {user.Email}? Their open sessions end {Within}. This cannot be undone (add them again to restore).", "Remove"),
            Users.RemoveAsync, $"Removed {user.Email}.");

    /// <summary>Asks (when <paramref name="confirm"/> says what), checks the signed-in user, makes the change, and says how it went.</summary>
    private async Task ChangeAsync(AdminUserRow user, (string Title, string Text, string Yes)? confirm,
        Func<string, string, CancellationToken, Task<string?>> change, string done)
    {
        if (confirm is { } c && !await ConfirmAsync(c.Title, c.Text, c.Yes)) return;
        if (await Session.ActorAsync() is not { } actor) return;
        if (await RefusedAsync(await change(actor, user.Id, CancellationToken.None))) return;
        Snackbar.Add(done, Severity.Info);
        await _grid.ReloadServerData();
    }

    private async Task<bool> ConfirmAsync(string title, string text, string yes) =>
        await Dialogs.ShowMessageBoxAsync(title, text, yesText: yes, cancelText: "Cancel") == true;

    /// <summary>Shows why a change was refused (the last active Admin, one's own account, a user gone meanwhile); true if it was.</summary>
    private async Task<bool> RefusedAsync(string? error)
    {
        if (error is null) return false;
        await Dialogs.ShowMessageBoxAsync("Not changed", error, yesText: "OK");
        await _grid.ReloadServerData();
        return true;
    }

    private async Task ShowPasswordAsync(string email, string password)
    {
        var parameters = new DialogParameters<ShownOnceDialog>
        {
            { d => d.Value, password },
            { d => d.What, "password" },
            { d => d.Label, $"Password for {email}" },
            { d => d.Notice, "Copy the password now and hand it over safely: it is shown only this once (the app keeps only its hash). " +
                "They can change it with \"Change my password\"." },
            { d => d.TestId, "new-password" },
        };
        var dialog = await Dialogs.ShowAsync<ShownOnceDialog>("Password", parameters, Wide);
        await dialog.Result;
    }

    private static readonly DialogOptions Narrow = new() { MaxWidth = MaxWidth.ExtraSmall, FullWidth = true, CloseOnEscapeKey = true };
    private static readonly DialogOptions Wide = new() { MaxWidth = MaxWidth.Medium, FullWidth = true, CloseOnEscapeKey = true };
}
