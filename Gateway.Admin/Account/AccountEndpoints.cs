using Gateway.Admin.Data;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;

namespace Gateway.Admin.Account;

internal static class AccountEndpoints
{
    /// <summary><c>POST /account/logout</c>: a form post (antiforgery-checked because it binds a form field).</summary>
    public static void MapAccount(this IEndpointRouteBuilder app) =>
        app.MapPost("/account/logout", async ([FromForm] string? returnUrl, SignInManager<AdminUser> signIn) =>
        {
            _ = returnUrl; // binding a form field is what puts antiforgery validation on this endpoint
            await signIn.SignOutAsync();
            return TypedResults.LocalRedirect("/account/login");
        }).RequireAuthorization();
}
