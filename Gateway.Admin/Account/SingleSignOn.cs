using Gateway.Admin.Data;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.OpenIdConnect;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;

namespace Gateway.Admin.Account;

/// <summary>
/// OpenID Connect sign-in (when <c>Admin:Oidc:Authority</c> is set): the provider's answer lands in Identity's external
/// cookie, then <c>/account/external/callback</c> signs in the app's user with the same e-mail (roles stay the app's).
/// </summary>
internal static class SingleSignOn
{
    public const string Scheme = "oidc";

    public static void AddSingleSignOn(this AuthenticationBuilder authentication, OidcOptions oidc, bool requireHttps) =>
        authentication.AddOpenIdConnect(Scheme, oidc.DisplayName, o =>
        {
            o.SignInScheme = IdentityConstants.ExternalScheme;
            o.Authority = oidc.Authority;
            o.ClientId = oidc.ClientId;
            o.ClientSecret = oidc.ClientSecret;
            o.ResponseType = "code";
            o.UsePkce = true;
            // The answer comes back as a top-level GET, so the correlation and nonce cookies can be SameSite=Lax and work
            // on plain-HTTP loopback too (SameSite=None needs Secure).
            o.ResponseMode = "query";
            o.CorrelationCookie.SameSite = SameSiteMode.Lax;
            o.NonceCookie.SameSite = SameSiteMode.Lax;
            o.RequireHttpsMetadata = requireHttps;
            o.Scope.Clear();
            foreach (var scope in (string[])["openid", "email", "profile"]) o.Scope.Add(scope);
            o.MapInboundClaims = false;
            o.SaveTokens = false;
        });

    public static void MapSingleSignOn(this IEndpointRouteBuilder app)
    {
        // A form post from the sign-in page (antiforgery-checked because it binds a form field).
        app.MapPost("/account/external", ([FromForm] string? returnUrl) =>
            TypedResults.Challenge(new AuthenticationProperties { RedirectUri = "/account/external/callback?returnUrl=" + Uri.EscapeDataString(LocalPath.Of(returnUrl)) },
                [Scheme]));
        app.MapGet("/account/external/callback", async (string? returnUrl, HttpContext http, SignInManager<AdminUser> signIn,
            UserManager<AdminUser> users, IOptions<AdminOptions> options) =>
        {
            var external = await http.AuthenticateAsync(IdentityConstants.ExternalScheme);
            await http.SignOutAsync(IdentityConstants.ExternalScheme);
            var email = external.Principal?.FindFirst("email")?.Value;
            if (!external.Succeeded || string.IsNullOrWhiteSpace(email)) return Refused("no-email");
            var user = await users.FindByEmailAsync(email);
            if (user is null && options.Value.Oidc.NewUserRole is { Length: > 0 } role)
            {
                user = new AdminUser { UserName = email, Email = email, EmailConfirmed = true };
                if (!(await users.CreateAsync(user)).Succeeded || !(await users.AddToRoleAsync(user, role)).Succeeded)
                    return Refused("not-created");
            }
            if (user is null) return Refused("no-account");
            if (await users.IsLockedOutAsync(user)) return Refused("locked");
            await signIn.SignInAsync(user, isPersistent: false, authenticationMethod: Scheme);
            return TypedResults.LocalRedirect(LocalPath.Of(returnUrl));
        });
    }

    // A code, not text: the sign-in page shows its own message for it (a link cannot put words on the page).
    private static Microsoft.AspNetCore.Http.HttpResults.RedirectHttpResult Refused(string code) => TypedResults.Redirect("/account/login?error=" + code);
}

/// <summary>Return addresses are paths inside this app, never another site (no open redirect).</summary>
internal static class LocalPath
{
    public static string Of(string? url) =>
        url is { Length: > 0 } && url.StartsWith('/') && !url.StartsWith("//", StringComparison.Ordinal) && !url.StartsWith("/\\", StringComparison.Ordinal)
            && Uri.IsWellFormedUriString(url, UriKind.Relative)
            ? url : "/";
}
