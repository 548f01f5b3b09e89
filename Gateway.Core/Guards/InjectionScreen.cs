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
        var categories = filter.Scan(request.Native is { } native ? [.. request.Messages!, .. NativeText(native)] : request.Messages!);
        return categories.Count == 0 ? null : new InjectionVerdict(action, categories);

        static InjectionAction Stricter(InjectionAction current, InjectionAction? other) =>
            other > current ? other.Value : current;
    }

    /// <summary>
    /// Every text of a passed-through request's own messages and system prompt (a document's text, a search result, a tool result's
    /// blocks; Anthropic's <c>system</c> and <c>messages</c>, Responses' <c>instructions</c>, <c>input</c> and <c>prompt</c> variables), as one user message:
    /// an upstream of its protocol reads them all, whatever the translation carried.
    /// </summary>
    private static ChatMessage[] NativeText(NativeRequest native)
    {
        var texts = new List<string>();
        foreach (var field in (string[])["system", "messages", "instructions", "input", "prompt"])
        {
            if (native.Body[field] is System.Text.Json.Nodes.JsonValue whole && whole.TryGetValue<string>(out var plain)) texts.Add(plain);
            else Collect(native.Body[field], texts);
        }
        if (texts.Count == 0) return [];
        return [new ChatMessage { Role = "user", Content = System.Text.Json.JsonSerializer.SerializeToElement(string.Join("\n", texts), GatewayJsonContext.Wire.String) }];

        // Strings under "text", "content", "data", "thinking" and "output" (a tool's), anywhere in the tree (base64 data is scanned as
        // text: it matches nothing).
        static void Collect(System.Text.Json.Nodes.JsonNode? node, List<string> texts)
        {
            switch (node)
            {
                case System.Text.Json.Nodes.JsonObject fields:
                    foreach (var (name, value) in fields)
                    {
                        if (name is "text" or "content" or "data" or "thinking" or "output" && value is System.Text.Json.Nodes.JsonValue leaf
                            && leaf.TryGetValue<string>(out var text))
                            texts.Add(text);
                        else Collect(value, texts);
                    }
                    break;
                case System.Text.Json.Nodes.JsonArray items:
                    foreach (var item in items) Collect(item, texts);
                    break;
            }
        }
    }
}
