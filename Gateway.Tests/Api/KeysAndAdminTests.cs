using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Dapper;
using Gateway.Tests.Fixtures;
using Npgsql;

namespace Gateway.Tests.Api;

public sealed class KeysAndAdminTests(TestEnvironment env)
{
    private GatewayHost Gateway => env.Gateway;

    private const string Hello = """{"model":"mock","messages":[{"role":"user","content":"hi"}]}""";

    [Fact]
    public async Task CreatedKey_IsShownOnceAndStoredOnlyAsItsHash()
    {
        using var admin = Gateway.Admin();
        var response = await admin.PostAsync("/admin/keys", Json("""{"name":"hash-check","allowed_models":["mock"]}"""));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var body = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        var key = body["key"]!.GetValue<string>();
        Assert.Matches("^gw-[A-Za-z0-9_-]{43}$", key); // 32 random bytes, base64url
        Assert.Equal(key[..11], body["prefix"]!.GetValue<string>());

        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        var row = await db.QuerySingleAsync("SELECT * FROM api_keys WHERE id = @id", new { id = body["id"]!.GetValue<Guid>() });
        Assert.Equal(SHA256.HashData(Encoding.UTF8.GetBytes(key)), (byte[])row.key_hash);
        var everything = await db.ExecuteScalarAsync<string>("SELECT string_agg(t::text, ' ') FROM api_keys t");
        Assert.DoesNotContain(key, everything, StringComparison.Ordinal);

        var list = await admin.GetStringAsync("/admin/keys");
        Assert.Contains(key[..11], list, StringComparison.Ordinal);
        Assert.DoesNotContain(key, list, StringComparison.Ordinal);
        Assert.DoesNotContain("key_hash", list, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RevokedKey_IsRefusedOnceTheRevocationReachesTheInstance()
    {
        var (key, id) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/chat/completions", Json(Hello))).StatusCode);

        using var admin = Gateway.Admin();
        var revoke = await admin.PostAsync($"/admin/keys/{id}/revoke", null);
        Assert.Equal(HttpStatusCode.OK, revoke.StatusCode);
        Assert.NotNull((await revoke.Content.ReadFromJsonAsync<JsonObject>())!["revoked_at"]);

        // The revocation arrives by NOTIFY (milliseconds; README: within a second). Nothing reloads keys on a timer,
        // so a revocation the instance never hears of keeps the key working past the bound and fails here.
        var refused = await Eventually.UntilAsync(() => client.PostAsync("/v1/chat/completions", Json(Hello)),
            r => r.StatusCode != HttpStatusCode.OK);

        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Equal("revoked_api_key", (await refused.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["code"]!.GetValue<string>());
    }

    [Fact]
    public async Task RotatedKey_OldSecretIsRefused_NewOneWorks_AndTheAuditLogHasNeither()
    {
        using var admin = Gateway.Admin();
        var created = (await (await admin.PostAsync("/admin/keys", Json("""{"name":"rotating","owner":"team-a@example.com"}""")))
            .Content.ReadFromJsonAsync<JsonObject>())!;
        var (oldKey, id) = (created["key"]!.GetValue<string>(), created["id"]!.GetValue<string>());
        Assert.Equal("team-a@example.com", created["owner"]!.GetValue<string>());

        var rotated = (await (await admin.PostAsync($"/admin/keys/{id}/rotate", null)).Content.ReadFromJsonAsync<JsonObject>())!;
        var newKey = rotated["key"]!.GetValue<string>();
        using var oldClient = Gateway.Client(oldKey);
        using var newClient = Gateway.Client(newKey);
        var ask = """{"model":"mock","messages":[{"role":"user","content":"hi"}]}""";
        // until the rotation's NOTIFY reached this instance
        var served = await Eventually.UntilAsync(() => newClient.PostAsync("/v1/chat/completions", Json(ask)), r => r.StatusCode == HttpStatusCode.OK);

        Assert.NotEqual(oldKey, newKey);
        Assert.Equal((id, "rotating"), (rotated["id"]!.GetValue<string>(), rotated["name"]!.GetValue<string>()));
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await oldClient.PostAsync("/v1/chat/completions", Json(ask))).StatusCode);
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        var audit = (await db.QueryAsync<(string Action, string Actor, string? After)>(
            "SELECT action, actor, after::text FROM audit_log WHERE entity = 'key' AND entity_id = @id ORDER BY id", new { id })).ToList();
        Assert.Equal(["key.create", "key.rotate"], audit.Select(a => a.Action));
        Assert.All(audit, a => Assert.Equal("admin-api (master key)", a.Actor));
        Assert.All(audit, a => Assert.Contains("\"key\": \"***\"", a.After, StringComparison.Ordinal));
        Assert.All(audit, a => Assert.DoesNotContain(oldKey, a.After, StringComparison.Ordinal));
        Assert.DoesNotContain(newKey, audit[1].After, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AdminToken_CallsTheAdminApi_IsNamedInTheAudit_CannotMintTokens_AndStopsWhenRevoked()
    {
        using var master = Gateway.Admin();
        var name = "ci-bot-" + Guid.NewGuid().ToString("N")[..6];
        var created = (await (await master.PostAsync("/admin/tokens", Json($$"""{"name":"{{name}}"}"""))).Content.ReadFromJsonAsync<JsonObject>())!;
        var token = created["token"]!.GetValue<string>();
        using var bot = Gateway.Client(token);

        var key = await bot.PostAsync("/admin/keys", Json("""{"name":"made-by-bot"}"""));
        var mint = await bot.PostAsync("/admin/tokens", Json("""{"name":"escalation"}"""));
        (await master.PostAsync($"/admin/tokens/{created["id"]}/revoke", null)).EnsureSuccessStatusCode();
        var afterRevoke = await bot.GetAsync("/admin/keys");

        Assert.StartsWith("gwa-", token, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Created, key.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, mint.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, afterRevoke.StatusCode);
        var keyId = (await key.Content.ReadFromJsonAsync<JsonObject>())!["id"]!.GetValue<string>();
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        Assert.Equal("admin-token:" + name, await db.ExecuteScalarAsync<string>(
            "SELECT actor FROM audit_log WHERE entity = 'key' AND entity_id = @keyId AND action = 'key.create'", new { keyId }));
        var stored = await db.ExecuteScalarAsync<string>("SELECT encode(token_hash, 'hex') || prefix FROM admin_tokens WHERE name = @name", new { name });
        Assert.DoesNotContain(token, stored!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AdminPortSet_AdminApiIsNotFoundOnTheOtherPorts()
    {
        await using var host = new GatewayHost(env.Postgres.ConnectionString, new() { ["Gateway:AdminPort"] = PostgresFixture.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture) });
        using var admin = host.Admin();

        var response = await admin.GetAsync("/admin/keys");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("not_found", (await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["code"]!.GetValue<string>());
    }

    [Fact]
    public async Task RevokingAnUnknownKey_Is404()
    {
        using var admin = Gateway.Admin();

        var response = await admin.PostAsync($"/admin/keys/{Guid.NewGuid()}/revoke", null);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("wrong-master-key")]
    public async Task AdminApi_WithoutTheMasterKey_Is401(string? bearer)
    {
        using var client = Gateway.Client(bearer);

        var create = await client.PostAsync("/admin/keys", Json("""{"name":"x"}"""));
        var list = await client.GetAsync("/admin/providers");

        Assert.Equal(HttpStatusCode.Unauthorized, create.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, list.StatusCode);
        Assert.NotNull((await create.Content.ReadFromJsonAsync<JsonObject>())!["error"]);
    }

    [Fact]
    public async Task AdminApi_AGatewayKeyIsNotAMasterKey()
    {
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);

        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/admin/keys")).StatusCode);
    }

    [Theory]
    [InlineData("/admin/keys", """{"name":""}""", "name")]
    [InlineData("/admin/keys", """{"name":"k","daily_budget_usd":-1}""", "daily_budget_usd")]
    [InlineData("/admin/providers", """{"name":"p1","protocol":"smoke-signals","base_url":"http://x"}""", "protocol")]
    [InlineData("/admin/providers", """{"name":"p2","protocol":"openai","base_url":"not a url"}""", "base_url")]
    [InlineData("/admin/providers", """{"name":"p3","protocol":"openai","base_url":"http://x","secret_ref":"plain-text-secret"}""", "secret_ref")]
    [InlineData("/admin/models", """{"alias":"m","provider":"mock","upstream_model":"x","input_price_per_mtok":-2}""", "input_price_per_mtok")]
    [InlineData("/admin/models", """{"alias":"m","provider":"mock","upstream_model":"x","output_price_per_mtok":1e15}""", "output_price_per_mtok")]
    [InlineData("/admin/keys", """{"name":"k","hard_cap_usd":1e13}""", "hard_cap_usd")]
    [InlineData("/admin/keys", """{"name":"a\u0000b"}""", "name")]
    [InlineData("/admin/providers", """{"name":"p4","protocol":"openai","base_url":"ftp://example.com/v1"}""", "base_url")]
    [InlineData("/admin/providers", """{"name":"p5","protocol":"openai","base_url":"http://x","secret_ref":"env:ConnectionStrings__Gateway"}""", "secret_ref")]
    [InlineData("/admin/providers", """{"name":"p6","protocol":"openai","base_url":"http://x","secret_ref":"env:Gateway__MasterKey"}""", "secret_ref")]
    [InlineData("/admin/providers", """{"name":"p7","protocol":"openai","base_url":"http://x","secret_ref":"file:/proc/self/environ"}""", "secret_ref")]
    [InlineData("/admin/providers", """{"name":"p8","protocol":"openai","base_url":"http://x","secret_ref":"file:/run/secrets/../../etc/shadow"}""", "secret_ref")]
    // Host secrets an admin token could otherwise send to a URL of its choosing.
    [InlineData("/admin/providers", """{"name":"p9","protocol":"openai","base_url":"http://x","secret_ref":"env:HOME"}""", "secret_ref")]
    [InlineData("/admin/providers", """{"name":"p10","protocol":"openai","base_url":"http://x","secret_ref":"env:AWS_SECRET_ACCESS_KEY"}""", "secret_ref")]
    [InlineData("/admin/providers", """{"name":"p11","protocol":"openai","base_url":"http://x","secret_ref":"file:/var/run/secrets/kubernetes.io/serviceaccount/token"}""", "secret_ref")]
    [InlineData("/admin/providers", """{"name":"p12","protocol":"openai","base_url":"http://admin:hunter2-pw@example.com/v1"}""", "base_url")]
    [InlineData("/admin/providers", """{"name":"p13","protocol":"openai","base_url":"http://169.254.169.254/latest/meta-data"}""", "base_url")]
    [InlineData("/admin/providers", """{"name":"p14","protocol":"openai","base_url":"http://[fd00:ec2::254]/latest"}""", "base_url")]
    [InlineData("/admin/providers", """{"name":"p15","protocol":"openai","base_url":"http://metadata.google.internal/computeMetadata/v1"}""", "base_url")]
    public async Task AdminApi_InvalidBody_Is400NamingTheField(string path, string body, string param)
    {
        using var admin = Gateway.Admin();

        var response = await admin.PostAsync(path, Json(body));
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(param, System.Text.Json.Nodes.JsonNode.Parse(text)!["error"]!["param"]!.GetValue<string>());
        Assert.DoesNotContain("hunter2-pw", text, StringComparison.Ordinal); // a password in a URL is never echoed
    }

    [Fact]
    public async Task AdminApi_MalformedJson_Is400InOpenAIShape()
    {
        using var admin = Gateway.Admin();

        var response = await admin.PostAsync("/admin/keys", Json("{\"name\":"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.NotNull((await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]!["message"]);
    }

    [Fact]
    public async Task Provider_LiteralSecret_IsStoredEncryptedAndNeverShown()
    {
        using var admin = Gateway.Admin();
        var name = "enc-" + Guid.NewGuid().ToString("N")[..8];

        var created = await admin.PostAsync("/admin/providers",
            Json($$"""{"name":"{{name}}","protocol":"openai","base_url":"{{env.Upstream.BaseUrl}}","secret":"sk-very-secret-value"}"""));

        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var shown = await created.Content.ReadAsStringAsync() + await admin.GetStringAsync("/admin/providers");
        Assert.DoesNotContain("sk-very-secret-value", shown, StringComparison.Ordinal);
        Assert.Contains("enc:(encrypted)", shown, StringComparison.Ordinal);
        await using var db = new NpgsqlConnection(env.Postgres.ConnectionString);
        var stored = await db.ExecuteScalarAsync<string>("SELECT secret_ref FROM providers WHERE name = @name", new { name });
        Assert.StartsWith("enc:", stored, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-very-secret-value", stored, StringComparison.Ordinal);

        var duplicate = await admin.PostAsync("/admin/providers",
            Json($$"""{"name":"{{name}}","protocol":"openai","base_url":"{{env.Upstream.BaseUrl}}"}"""));
        Assert.Equal(HttpStatusCode.Conflict, duplicate.StatusCode);
    }

    [Fact]
    public async Task Provider_EnvSecretReference_IsSentToTheUpstream()
    {
        var variable = "GATEWAY_SECRET_TEST_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        Environment.SetEnvironmentVariable(variable, "sk-from-the-environment");
        var provider = "env-" + Guid.NewGuid().ToString("N")[..8];
        using var admin = Gateway.Admin();
        (await admin.PostAsync("/admin/providers",
            Json($$"""{"name":"{{provider}}","protocol":"openai","base_url":"{{env.Upstream.BaseUrl}}","secret_ref":"env:{{variable}}"}"""))).EnsureSuccessStatusCode();
        (await admin.PutAsync($"/admin/models/{provider}-model",
            Json($$"""{"provider":"{{provider}}","upstream_model":"gpt-4o-mini","input_price_per_mtok":1,"output_price_per_mtok":1}"""))).EnsureSuccessStatusCode();
        var (key, _) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var marker = Guid.NewGuid().ToString("N");

        // until the new model's NOTIFY reached this instance
        var response = await Eventually.UntilAsync(() => client.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"{{provider}}-model","messages":[{"role":"user","content":"{{marker}}"}]}""")), r => r.StatusCode != HttpStatusCode.NotFound);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Bearer sk-from-the-environment", env.Upstream.Find(marker)!.Authorization);
        Assert.Contains($"env:{variable}", await admin.GetStringAsync("/admin/providers"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ModelPriceChange_DoesNotRewriteEarlierUsageRows()
    {
        var alias = await Gateway.AddModelAsync(env.Upstream.BaseUrl, "gpt-4o-mini", inputPrice: 2.5m, outputPrice: 10m, cachedPrice: 1.25m);
        var (key, keyId) = await Gateway.CreateKeyAsync();
        using var client = Gateway.Client(key);
        var body = Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"hi"}]}""");
        var first = await client.PostAsync("/v1/chat/completions", body);

        using var admin = Gateway.Admin();
        var put = await admin.PutAsync($"/admin/models/{alias}",
            Json($$"""{"provider":"{{alias.Split('/')[0]}}","upstream_model":"gpt-4o-mini","input_price_per_mtok":5,"output_price_per_mtok":20,"cached_input_price_per_mtok":2.5}"""));
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        await GatewayHost.WaitUntilAsync(() =>
            Gateway.Services.GetService(typeof(Gateway.Core.Catalog.ModelCatalog)) is Gateway.Core.Catalog.ModelCatalog c && c.Find(alias)!.InputPricePerMTok == 5m);
        var second = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{alias}}","messages":[{"role":"user","content":"hi"}]}"""));

        var before = await env.WaitForUsageAsync(Guid.Parse(first.Headers.GetValues("x-gateway-request-id").Single()));
        var after = await env.WaitForUsageAsync(Guid.Parse(second.Headers.GetValues("x-gateway-request-id").Single()));
        Assert.Equal((2.5m, 10m, 1.25m), (before.InputPricePerMTok, before.OutputPricePerMTok, before.CachedInputPricePerMTok));
        Assert.Equal((5m, 20m, 2.5m), (after.InputPricePerMTok, after.OutputPricePerMTok, after.CachedInputPricePerMTok));
        Assert.Equal(before.CostUsd * 2, after.CostUsd);
        Assert.Equal(keyId, after.KeyId);
    }
}
