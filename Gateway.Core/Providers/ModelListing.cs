namespace Gateway.Core.Providers;

/// <summary>A provider's answer to its list-models call: the model ids on its first page.</summary>
public sealed record ModelListing(IReadOnlyList<string> Models);
