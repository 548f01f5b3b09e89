using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Gateway.Tests.Fixtures;

/// <summary>
/// An OpenID Connect provider for the admin app's single sign-on, per OpenID Connect Core 1.0 and Discovery 1.0:
/// discovery document, an authorization endpoint that signs <see cref="Email"/> in at once (code flow, PKCE S256
/// checked), a token endpoint (client_secret_post) answering an RS256 id_token with the nonce, and the JWKS.
/// </summary>
public sealed class FakeOidcProvider : FakeServer
{
    public const string ClientId = "gateway-admin";
    public const string ClientSecret = "fake-oidc-client-secret";

    private readonly RSA _rsa = RSA.Create(2048);
    private readonly ConcurrentDictionary<string, (string Nonce, string Challenge, string RedirectUri, string Email)> _codes = new();

    /// <summary>Who the provider says the user is.</summary>
    public string Email { get; set; } = "";

    public static Task<FakeOidcProvider> StartAsync() => StartAsync(new FakeOidcProvider(), "");

    private RsaSecurityKey Key => new(_rsa) { KeyId = "fake-key-1" };

    protected override void Map(WebApplication app)
    {
        app.MapGet("/.well-known/openid-configuration", () => Results.Text($$"""
            {
              "issuer": "{{BaseUrl}}",
              "authorization_endpoint": "{{BaseUrl}}/authorize",
              "token_endpoint": "{{BaseUrl}}/token",
              "jwks_uri": "{{BaseUrl}}/jwks",
              "response_types_supported": ["code"],
              "subject_types_supported": ["public"],
              "id_token_signing_alg_values_supported": ["RS256"],
              "scopes_supported": ["openid", "email", "profile"],
              "token_endpoint_auth_methods_supported": ["client_secret_post"],
              "code_challenge_methods_supported": ["S256"]
            }
            """, "application/json"));
        app.MapGet("/jwks", () =>
        {
            var p = _rsa.ExportParameters(false);
            return Results.Json(new { keys = new[] { new { kty = "RSA", use = "sig", alg = "RS256", kid = Key.KeyId,
                n = Base64UrlEncoder.Encode(p.Modulus), e = Base64UrlEncoder.Encode(p.Exponent) } } });
        });
        app.MapGet("/authorize", (HttpRequest request) =>
        {
            var q = request.Query;
            if (q["client_id"] != ClientId || q["response_type"] != "code" || q["code_challenge_method"] != "S256"
                || string.IsNullOrEmpty(q["redirect_uri"]) || !q["scope"].ToString().Split(' ').Contains("openid"))
                return Results.BadRequest("invalid_request");
            var code = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
            _codes[code] = (q["nonce"].ToString(), q["code_challenge"].ToString(), q["redirect_uri"].ToString(), Email);
            return Results.Redirect($"{q["redirect_uri"]}?code={code}&state={Uri.EscapeDataString(q["state"].ToString())}");
        });
        app.MapPost("/token", async (HttpRequest request) =>
        {
            var form = await request.ReadFormAsync();
            if (form["client_id"] != ClientId || form["client_secret"] != ClientSecret) return Results.Json(new { error = "invalid_client" }, statusCode: 401);
            if (form["grant_type"] != "authorization_code" || !_codes.TryRemove(form["code"].ToString(), out var granted)
                || form["redirect_uri"] != granted.RedirectUri
                || Base64UrlEncoder.Encode(SHA256.HashData(Encoding.ASCII.GetBytes(form["code_verifier"].ToString()))) != granted.Challenge)
                return Results.Json(new { error = "invalid_grant" }, statusCode: 400);
            var now = TimeProvider.System.GetUtcNow();
            var idToken = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
            {
                Issuer = BaseUrl,
                Audience = ClientId,
                IssuedAt = now.UtcDateTime,
                NotBefore = now.UtcDateTime,
                Expires = now.AddMinutes(5).UtcDateTime,
                Claims = new Dictionary<string, object> { ["sub"] = "user-" + granted.Email, ["email"] = granted.Email, ["nonce"] = granted.Nonce },
                SigningCredentials = new SigningCredentials(Key, SecurityAlgorithms.RsaSha256),
            });
            return Results.Json(new { access_token = Convert.ToHexString(RandomNumberGenerator.GetBytes(16)), token_type = "Bearer", expires_in = 300,
                id_token = idToken, scope = "openid email profile" });
        });
    }
}
