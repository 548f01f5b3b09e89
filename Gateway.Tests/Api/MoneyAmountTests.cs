using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Gateway.Tests.Fixtures;

namespace Gateway.Tests.Api;

/// <summary>
/// Money amounts are kept exactly or refused: the admin API refuses more decimals than are stored (six) in every budget, cap and
/// price, naming the field; and an amount of 0 means what it says, from the first request.
/// </summary>
public sealed class MoneyAmountTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    private Task<CreatedKey> KeyAsync(string settings) => Gateway.CreateKeyFromJsonAsync($$"""{"name":"money-{{Guid.NewGuid():N}}",{{settings}}}""");

    public static TheoryData<string, string, string, string> TooPrecise => new()
    {
        { "POST", "/admin/keys", """{"name":"n","daily_budget_usd":0.0000001}""", "daily_budget_usd" },
        { "POST", "/admin/keys", """{"name":"n","hardLimitUsd":1.0000005}""", "hard_cap_usd" },
        { "POST", "/admin/keys", """{"name":"n","monthlyBudgetUsd":2.1234567}""", "monthly_budget_usd" },
        { "POST", "/admin/keys", """{"name":"n","end_user_daily_budget_usd":0.00000001}""", "end_user_daily_budget_usd" },
        { "POST", "/admin/models", """{"provider":"mock","upstream_model":"mock-1","input_price_per_mtok":0.0000001}""", "input_price_per_mtok" },
        { "POST", "/admin/models", """{"provider":"mock","upstream_model":"mock-1","output_price_per_mtok":1.0000001}""", "output_price_per_mtok" },
        { "POST", "/admin/models", """{"provider":"mock","upstream_model":"mock-1","cached_input_price_per_mtok":0.1234567}""", "cached_input_price_per_mtok" },
        { "POST", "/admin/models", """{"provider":"mock","upstream_model":"mock-1","cache_write_price_per_mtok":3.7500001}""", "cache_write_price_per_mtok" },
        { "POST", "/admin/models", """{"provider":"mock","upstream_model":"mock-1","cache_write_1h_price_per_mtok":6.0000001}""", "cache_write_1h_price_per_mtok" },
        { "PUT", "/admin/budgets/tags/", """{"daily_budget_usd":0.0000001}""", "daily_budget_usd" },
        { "PUT", "/admin/budgets/tags/", """{"monthly_budget_usd":0.0000001}""", "monthly_budget_usd" },
    };

    [Theory]
    [MemberData(nameof(TooPrecise))]
    public async Task MoneyField_WithMoreDecimalsThanStored_Is400NamingTheField_AndNothingIsStored(string method, string path, string body, string field)
    {
        var name = "precise-" + Guid.NewGuid().ToString("N")[..8];
        var json = JsonNode.Parse(body)!.AsObject();
        if (path == "/admin/models") json["alias"] = name;
        if (path == "/admin/keys") json["name"] = name;
        if (method == "PUT") path += name;
        using var admin = Gateway.Admin();

        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = Json(json.ToJsonString()) };
        using var response = await admin.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);

        var error = (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!;
        Assert.Equal((HttpStatusCode.BadRequest, field, "invalid_value", "invalid_request_error"), (response.StatusCode, error["param"]!.GetValue<string>(),
            error["code"]!.GetValue<string>(), error["type"]!.GetValue<string>()));
        Assert.StartsWith($"'{field}' has more than 6 decimals, the most that is stored:", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        var stored = await admin.GetStringAsync(path.StartsWith("/admin/budgets", StringComparison.Ordinal) ? "/admin/budgets/tags" : path);
        Assert.DoesNotContain(name, stored, StringComparison.Ordinal);
    }

    [Fact]
    public async Task KeyPatch_WithMoreDecimalsThanStored_Is400_AndTheBudgetIsUnchanged()
    {
        var (_, id) = await KeyAsync("\"daily_budget_usd\":0.5");
        using var admin = Gateway.Admin();

        using var response = await admin.PatchAsync($"/admin/keys/{id}", Json("""{"daily_budget_usd":0.0000001}"""));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("daily_budget_usd", (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["param"]!.GetValue<string>());
        Assert.Equal(0.5m, (await admin.GetFromJsonAsync<JsonObject>($"/admin/keys/{id}"))!["daily_budget_usd"]!.GetValue<decimal>());
    }

    [Fact]
    public async Task MoneyFields_WithSixDecimals_AreStoredExactly()
    {
        // Trailing zeros are no extra precision.
        var (_, id) = await KeyAsync("\"daily_budget_usd\":0.000001,\"hard_cap_usd\":12.345678,\"monthly_budget_usd\":1.50000000");
        using var admin = Gateway.Admin();

        var key = (await admin.GetFromJsonAsync<JsonObject>($"/admin/keys/{id}"))!;

        Assert.Equal((0.000001m, 12.345678m, 1.5m), (key["daily_budget_usd"]!.GetValue<decimal>(), key["hard_cap_usd"]!.GetValue<decimal>(),
            key["monthly_budget_usd"]!.GetValue<decimal>()));
    }

    [Fact]
    public async Task DailyBudgetOfZero_DowngradesFromTheFirstRequest()
    {
        var (key, _) = await KeyAsync("\"daily_budget_usd\":0,\"downgrade_model\":\"mock-mini\"");
        using var client = Gateway.Client(key);

        using var response = await client.PostAsync("/v1/chat/completions", Json("""{"model":"mock","messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(("mock", "0"), (response.Headers.GetValues("x-gateway-downgraded-from").Single(),
            response.Headers.GetValues("x-gateway-budget-remaining").Single()));
        Assert.Equal("mock-mini-1", (await response.Content.ReadFromJsonAsync<JsonObject>())!["model"]!.GetValue<string>());
    }

    [Fact]
    public async Task HardCapOfZero_RefusesTheFirstRequest_EvenWithACheaperModelToGoTo()
    {
        var (key, keyId) = await KeyAsync("\"hard_cap_usd\":0,\"downgrade_model\":\"mock-mini\"");
        using var client = Gateway.Client(key);

        using var response = await client.PostAsync("/v1/chat/completions", Json("""{"model":"mock","messages":[{"role":"user","content":"hi"}]}"""));

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal("insufficient_quota", (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["code"]!.GetValue<string>());
        var row = await env.WaitForUsageAsync(Guid.Parse(response.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((keyId, (short)429, 0m), (row.KeyId, row.Status, row.CostUsd));
    }
}
