using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

/// <summary>
/// A model or rule that names a provider or model that does not exist is refused (400, naming it) instead of saved and failing
/// at request time; nothing is written.
/// </summary>
public sealed class AdminReferenceTests(TestEnvironment env)
{
    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 13)];

    private static async Task<JsonObject> RefusedAsync(HttpResponseMessage response, string missing, string param)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
        var error = JsonNode.Parse(text)!["error"]!.AsObject();
        Assert.Contains($"'{missing}'", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("does not exist", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(("invalid_request_error", "invalid_value", param),
            (error["type"]!.GetValue<string>(), error["code"]!.GetValue<string>(), error["param"]!.GetValue<string>()));
        return error;
    }

    private static async Task<bool> RuleExistsAsync(HttpClient admin, string name) =>
        (await admin.GetFromJsonAsync<JsonArray>("/admin/routes"))!.Any(r => r!["name"]!.GetValue<string>() == name);

    private static async Task<bool> ModelExistsAsync(HttpClient admin, string alias) =>
        (await admin.GetFromJsonAsync<JsonArray>("/admin/models"))!.Any(m => m!["alias"]!.GetValue<string>() == alias);

    [Fact]
    public async Task Rule_TargetingAMissingModel_Is400NamingItAndNotSaved()
    {
        using var admin = env.Gateway.Admin();
        var name = Unique("dangling");
        var missing = Unique("gemini-flash");

        var response = await admin.PutAsync($"/admin/routes/{name}",
            Json($$"""{"priority":10,"match":{"models":["auto"]},"targets":[{"model":"mock"},{"model":"{{missing}}"}]}"""));

        await RefusedAsync(response, missing, "targets[1].model");
        Assert.False(await RuleExistsAsync(admin, name));
    }

    [Fact]
    public async Task Rule_WithAMissingFallbackOrDowngradeModel_Is400NamingIt()
    {
        using var admin = env.Gateway.Admin();
        var missing = Unique("nowhere");

        var fallback = await admin.PostAsync("/admin/routes",
            Json($$"""{"name":"{{Unique("fb")}}","targets":[{"model":"mock"}],"fallbacks":["mock-mini","{{missing}}"]}"""));
        var downgrade = await admin.PutAsync($"/admin/routes/{Unique("dg")}",
            Json($$"""{"targets":[{"model":"mock"}],"downgrade_model":"{{missing}}"}"""));

        await RefusedAsync(fallback, missing, "fallbacks[1]");
        await RefusedAsync(downgrade, missing, "downgrade_model");
    }

    [Fact]
    public async Task Rule_OnAVirtualAliasTargetingExistingModels_IsCreated()
    {
        using var admin = env.Gateway.Admin();
        var name = Unique("fine");

        var response = await admin.PutAsync($"/admin/routes/{name}", Json($$"""
            {"priority":10,"match":{"models":["{{Unique("virtual")}}"]},"targets":[{"model":"mock"}],"fallbacks":["mock-mini"],"downgrade_model":"mock-mini"}
            """));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        (await admin.DeleteAsync($"/admin/routes/{name}")).EnsureSuccessStatusCode();
    }

    [Fact]
    public async Task Model_OnAMissingProvider_Is400NamingIt()
    {
        using var admin = env.Gateway.Admin();
        var alias = Unique("orphan");
        var provider = Unique("no-such-provider");

        var response = await admin.PostAsync("/admin/models",
            Json($$"""{"alias":"{{alias}}","provider":"{{provider}}","upstream_model":"x"}"""));

        var error = await RefusedAsync(response, provider, "provider");
        Assert.Contains("provider", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.False(await ModelExistsAsync(admin, alias));
    }

    [Fact]
    public async Task Model_WithAMissingFallbackAlias_Is400NamingIt()
    {
        using var admin = env.Gateway.Admin();
        var alias = Unique("with-fallback");
        var missing = Unique("not-a-model");

        var response = await admin.PutAsync($"/admin/models/{alias}",
            Json($$"""{"provider":"mock","upstream_model":"mock-1","fallbacks":["mock-mini","{{missing}}"]}"""));
        var fine = await admin.PutAsync($"/admin/models/{alias}",
            Json("""{"provider":"mock","upstream_model":"mock-1","fallbacks":["mock-mini"]}"""));

        await RefusedAsync(response, missing, "fallbacks[1]");
        Assert.Equal(HttpStatusCode.Created, fine.StatusCode);
    }
}
