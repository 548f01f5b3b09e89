namespace Gateway.Tests.Fixtures;

/// <summary>
/// Load runs (fuzz, crash, outage, the run script) run alone, after the parallel tests: on a 2-core machine they would
/// otherwise starve timing-sensitive tests (browser clicks, NOTIFY within a second) of CPU.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class HeavyTests
{
    public const string Name = "Heavy";
}
