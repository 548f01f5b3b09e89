using Gateway.Core.Catalog;

namespace Gateway.Core.Seeding;

/// <summary>The declarative seed file (<c>gateway.json</c>): providers, models and routing rules upserted at start-up.</summary>
public sealed record SeedFile(IReadOnlyList<ProviderRequest>? Providers, IReadOnlyList<ModelRequest>? Models,
    IReadOnlyList<Routing.RoutingRule>? Routes = null);
