using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace Gateway.Core.Admin;

/// <summary>The admin API's and seed file's JSON: snake_case, like OpenAI's.</summary>
public static class AdminJson
{
    /// <summary>
    /// Reads and writes the admin API's types through <see cref="AdminJsonContext"/> (no reflection, so the Native AOT host
    /// serializes them as the tests do); where reflection is on (the JIT-run admin app), types of its own are written too.
    /// </summary>
    public static readonly JsonSerializerOptions Options =
        Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web), reflection: true, AdminJsonContext.Default);

    /// <summary>
    /// Snake_case, comments and trailing commas allowed; <paramref name="contexts"/> only, or reflection after them where it
    /// is on and <paramref name="reflection"/> says so.
    /// </summary>
    public static JsonSerializerOptions Configure(JsonSerializerOptions options, bool reflection, params IJsonTypeInfoResolver[] contexts)
    {
        options.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        options.ReadCommentHandling = JsonCommentHandling.Skip;
        options.AllowTrailingCommas = true;
        options.TypeInfoResolverChain.Clear();
        foreach (var context in contexts) options.TypeInfoResolverChain.Add(context);
        if (reflection && JsonSerializer.IsReflectionEnabledByDefault) AddReflection(options);
        return options;
    }

    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "Only where reflection is on: never in the Native AOT host, whose feature switch turns it off.")]
    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("AOT", "IL3050", Justification = "Only where reflection is on: never in the Native AOT host, whose feature switch turns it off.")]
    private static void AddReflection(JsonSerializerOptions options) => options.TypeInfoResolverChain.Add(new DefaultJsonTypeInfoResolver());

    /// <summary>The admin API's contract for <typeparamref name="T"/> (its snake_case names, its converters).</summary>
    public static JsonTypeInfo<T> Info<T>() => (JsonTypeInfo<T>)Options.GetTypeInfo(typeof(T));
}

/// <summary>Source-generated serializers for the admin API, the seed file and the audit log's records.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true)]
[JsonSerializable(typeof(JsonObject))]
[JsonSerializable(typeof(Seeding.SeedFile))]
[JsonSerializable(typeof(Keys.CreateKeyRequest))]
[JsonSerializable(typeof(Keys.CreatedKey))]
[JsonSerializable(typeof(Keys.KeyView))]
[JsonSerializable(typeof(IReadOnlyList<Keys.KeyView>))]
[JsonSerializable(typeof(Catalog.ProviderRequest))]
[JsonSerializable(typeof(Catalog.ProviderView))]
[JsonSerializable(typeof(IReadOnlyList<Catalog.ProviderView>))]
[JsonSerializable(typeof(Catalog.ModelRequest))]
[JsonSerializable(typeof(Catalog.ModelView))]
[JsonSerializable(typeof(IReadOnlyList<Catalog.ModelView>))]
[JsonSerializable(typeof(Budgets.TagBudget))]
[JsonSerializable(typeof(List<Budgets.TagBudget>))]
[JsonSerializable(typeof(Routing.RoutingRule))]
[JsonSerializable(typeof(IReadOnlyList<Routing.RoutingRule>))]
[JsonSerializable(typeof(Routing.RouteTestResult))]
[JsonSerializable(typeof(AdminTokenView))]
[JsonSerializable(typeof(IReadOnlyList<AdminTokenView>))]
[JsonSerializable(typeof(Reports.SpendRow))]
[JsonSerializable(typeof(IReadOnlyList<Reports.SpendRow>))]
public sealed partial class AdminJsonContext : JsonSerializerContext;
