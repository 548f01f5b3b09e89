namespace Gateway.Core.Routing;

/// <summary>"What would happen" to a request: the rule that matches (null: none, the asked alias itself) and the candidate chain in order.</summary>
public sealed record RouteTestResult(string? Rule, IReadOnlyList<RouteTestCandidate> Candidates);

/// <summary>One candidate of a chain: the alias, the provider that serves it and the model it is asked for there.</summary>
public sealed record RouteTestCandidate(string Alias, string Provider, string UpstreamModel);
