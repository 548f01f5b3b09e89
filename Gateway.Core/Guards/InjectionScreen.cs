using Gateway.Core.Keys;
using Gateway.Core.Routing;
using Gateway.Core.Wire;
using Microsoft.Extensions.Options;

namespace Gateway.Core.Guards;

/// <summary>Step 5 of the pipeline (<see cref="Pipeline.ChatPipeline"/>): the prompt-injection filter at the strictest setting that applies.</summary>
public sealed class InjectionScreen(InjectionFilter filter, IOptions<GatewayOptions> options)
{
    /// <summary>
    /// Runs the prompt-injection filter on a routed chat request, at the strictest of <c>Gateway:InjectionFilter</c>, the key's
    /// <c>injection_filter</c> and the routing rule's. Null when the filter is off for the request (nothing is scanned) or
    /// found nothing.
    /// </summary>
    public InjectionVerdict? Screen(GatewayKey key, ChatCompletionRequest request, RouteDecision decision)
    {
        var action = Stricter(Stricter(options.Value.InjectionFilter, key.InjectionFilter), decision.InjectionFilter);
        if (action == InjectionAction.Off) return null;
        var categories = filter.Scan(request.Messages!);
        return categories.Count == 0 ? null : new InjectionVerdict(action, categories);

        static InjectionAction Stricter(InjectionAction current, InjectionAction? other) =>
            other > current ? other.Value : current;
    }
}
