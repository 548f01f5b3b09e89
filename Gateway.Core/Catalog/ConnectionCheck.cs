namespace Gateway.Core.Catalog;

/// <summary>The outcome of a provider's "test connection".</summary>
/// <param name="Ok">The provider answered its list-models call with a model list.</param>
/// <param name="Status">The provider's HTTP status when it refused the call; null otherwise.</param>
/// <param name="Message">What to show: "OK…" or the failure in the provider's words; never its secret.</param>
/// <param name="Models">Model ids on the first page of the provider's list.</param>
public sealed record ConnectionCheck(bool Ok, int? Status, string Message, IReadOnlyList<string> Models, TimeSpan Elapsed);
