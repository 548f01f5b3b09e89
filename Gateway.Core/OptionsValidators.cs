using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Gateway.Core;

/// <summary>
/// Data-annotation checks of the options, generated at build time (the reflection-based <c>ValidateDataAnnotations</c> does
/// not survive Native AOT's trimming). Same attributes, same messages.
/// </summary>
public static class GeneratedValidation
{
    /// <summary>Validates <typeparamref name="T"/>'s data annotations with the generated <typeparamref name="TValidator"/>.</summary>
    public static OptionsBuilder<T> ValidateAnnotations<T, TValidator>(this OptionsBuilder<T> builder)
        where T : class
        where TValidator : class, IValidateOptions<T>, new()
    {
        builder.Services.AddSingleton<IValidateOptions<T>>(new TValidator());
        return builder;
    }
}

[OptionsValidator] internal sealed partial class GatewayOptionsValidator : IValidateOptions<GatewayOptions>;
[OptionsValidator] internal sealed partial class UpstreamOptionsValidator : IValidateOptions<Providers.UpstreamOptions>;
[OptionsValidator] internal sealed partial class FailoverOptionsValidator : IValidateOptions<Failover.FailoverOptions>;
[OptionsValidator] internal sealed partial class ResponsesOptionsValidator : IValidateOptions<Responses.ResponsesOptions>;
[OptionsValidator] internal sealed partial class MeteringOptionsValidator : IValidateOptions<Metering.MeteringOptions>;
[OptionsValidator] internal sealed partial class UsageRetentionOptionsValidator : IValidateOptions<Metering.UsageRetentionOptions>;
[OptionsValidator] internal sealed partial class BudgetOptionsValidator : IValidateOptions<Budgets.BudgetOptions>;
[OptionsValidator] internal sealed partial class CacheOptionsValidator : IValidateOptions<Caching.CacheOptions>;
