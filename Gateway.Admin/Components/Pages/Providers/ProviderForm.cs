using System.Text.Json;
using Gateway.Core.Catalog;

namespace Gateway.Admin.Components.Pages.Providers;

/// <summary>
/// The provider editor's fields. The secret is either a reference (<c>env:NAME</c>, <c>file:/path</c>) or typed in, which the
/// store encrypts; an edit keeps the stored secret unless another is given. The rules are the admin API's (<see cref="ProviderRequestValidator"/>).
/// </summary>
public sealed class ProviderForm
{
    /// <summary>How the form sets the secret.</summary>
    public enum SecretSource
    {
        Keep,
        Reference,
        Typed,
        None,
    }

    public string Name { get; set; } = "";
    public string Protocol { get; set; } = "openai";
    public string BaseUrl { get; set; } = "";
    public SecretSource Source { get; set; } = SecretSource.Reference;
    public string? SecretRef { get; set; }
    public string? Secret { get; set; }
    public bool Enabled { get; set; } = true;
    /// <summary>The provider's <c>settings</c> object as JSON (see the README's provider settings); empty: the protocol's defaults.</summary>
    public string? Settings { get; set; }

    public static ProviderForm From(ProviderView provider) => new()
    {
        Name = provider.Name,
        Protocol = provider.Protocol,
        BaseUrl = provider.BaseUrl,
        Source = SecretSource.Keep,
        Enabled = provider.Enabled,
        Settings = provider.Settings == ProviderSettings.Default ? null : provider.Settings.ToJson(),
    };

    /// <summary>The request this form makes, or the problems only the form can see (keyed by field).</summary>
    public (ProviderRequest? Request, Dictionary<string, string> Problems) ToRequest()
    {
        var problems = new Dictionary<string, string>();
        ProviderSettings settings = ProviderSettings.Default;
        if (!string.IsNullOrWhiteSpace(Settings))
        {
            try
            {
                settings = ProviderSettings.Parse(Settings);
            }
            catch (JsonException ex)
            {
                problems[nameof(Settings)] = $"Not valid settings: {ex.Message}";
            }
        }
        var reference = SecretRef?.Trim();
        if (Source == SecretSource.Reference && string.IsNullOrEmpty(reference))
            problems[nameof(SecretRef)] = "Enter env:NAME or file:/path.";
        if (Source == SecretSource.Typed && string.IsNullOrEmpty(Secret))
            problems[nameof(Secret)] = "Type the secret, or choose another source.";
        if (problems.Count > 0) return (null, problems);
        return (new ProviderRequest(
            Name: Name.Trim(),
            Protocol: Protocol,
            BaseUrl: BaseUrl.Trim(),
            SecretRef: Source == SecretSource.Reference ? reference : null,
            Secret: Source == SecretSource.Typed ? Secret : null,
            Enabled: Enabled,
            Settings: settings), problems);
    }
}
