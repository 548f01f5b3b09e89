using Gateway.Core.Keys;

namespace Gateway.Admin.Components.Pages.Keys;

/// <summary>The key editor's fields. Lists are comma-separated text; the rules are the admin API's (<see cref="CreateKeyRequestValidator"/>).</summary>
public sealed class KeyForm
{
    public string Name { get; set; } = "";
    public string? Owner { get; set; }
    public string? Tags { get; set; }
    public string? AllowedModels { get; set; }
    public decimal? DailyBudgetUsd { get; set; }
    public decimal? MonthlyBudgetUsd { get; set; }
    public decimal? HardCapUsd { get; set; }
    public string? DowngradeModel { get; set; }
    public int? RpmLimit { get; set; }
    public int? TpmLimit { get; set; }
    public DateTime? ExpiresOn { get; set; }
    /// <summary>off, flag or block; null leaves the gateway's default alone.</summary>
    public string? InjectionFilter { get; set; }
    /// <summary>How long deterministic answers are cached; null: no caching.</summary>
    public int? CacheTtlSeconds { get; set; }
    /// <summary>key, tags or global: who shares the key's cached answers.</summary>
    public string CacheScope { get; set; } = "key";

    public static KeyForm From(KeyView key) => new()
    {
        Name = key.Name,
        Owner = key.Owner,
        Tags = string.Join(", ", key.Tags),
        AllowedModels = string.Join(", ", key.AllowedModels),
        DailyBudgetUsd = key.DailyBudgetUsd,
        MonthlyBudgetUsd = key.MonthlyBudgetUsd,
        HardCapUsd = key.HardCapUsd,
        DowngradeModel = key.DowngradeModel,
        RpmLimit = key.RpmLimit,
        TpmLimit = key.TpmLimit,
        ExpiresOn = key.ExpiresAt?.Date,
        InjectionFilter = key.InjectionFilter,
        CacheTtlSeconds = key.CacheTtlSeconds,
        CacheScope = key.CacheScope,
    };

    /// <summary>The request this form makes; settings the form does not show are kept from <paramref name="existing"/>.</summary>
    public CreateKeyRequest ToRequest(KeyView? existing) => new(
        Name: Name,
        AllowedModels: Split(AllowedModels),
        // A key expires at the end of the chosen day (UTC).
        ExpiresAt: ExpiresOn is { } day ? new DateTimeOffset(DateTime.SpecifyKind(day.Date.AddDays(1), DateTimeKind.Utc)) : null,
        DailyBudgetUsd: DailyBudgetUsd,
        HardCapUsd: HardCapUsd,
        DowngradeModel: string.IsNullOrWhiteSpace(DowngradeModel) ? null : DowngradeModel,
        RpmLimit: RpmLimit,
        TpmLimit: TpmLimit,
        Tags: Split(Tags),
        CacheTtlSeconds: CacheTtlSeconds,
        BudgetTiers: existing?.BudgetTiers,
        MonthlyBudgetUsd: MonthlyBudgetUsd,
        EndUserDailyBudgetUsd: existing?.EndUserDailyBudgetUsd,
        Owner: Owner,
        InjectionFilter: string.IsNullOrWhiteSpace(InjectionFilter) ? null : InjectionFilter,
        CacheScope: CacheScope);

    private static string[] Split(string? list) =>
        list is null ? [] : [.. list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
}
