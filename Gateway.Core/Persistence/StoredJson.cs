using System.Text.Json.Serialization;

namespace Gateway.Core.Persistence;

/// <summary>
/// JSON the gateway writes with the serializer's defaults (PascalCase names): a key's budget tiers in their column, FOCUS
/// tags in a CSV cell. Source-generated, so the Native AOT host writes and reads them as before.
/// </summary>
[JsonSerializable(typeof(List<Keys.BudgetTier>))]
[JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class StoredJson : JsonSerializerContext;
