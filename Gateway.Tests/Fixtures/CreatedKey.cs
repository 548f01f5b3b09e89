using System.Text.Json.Nodes;

namespace Gateway.Tests.Fixtures;

/// <summary>A key made through the admin API: its secret, its id and the API's whole answer.</summary>
public sealed record CreatedKey(string Key, Guid Id, JsonObject Body)
{
    /// <summary>For <c>var (key, id) = await host.CreateKeyFromJsonAsync(…)</c>.</summary>
    public void Deconstruct(out string key, out Guid id) => (key, id) = (Key, Id);
}
