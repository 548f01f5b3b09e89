using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Admin.Data;

/// <summary>An admin app user (ASP.NET Core Identity).</summary>
public sealed class AdminUser : IdentityUser;

/// <summary>The app's roles: <see cref="Admin"/> may change everything, <see cref="Finance"/> reads spend and exports it.</summary>
public static class AdminRoles
{
    public const string Admin = "Admin";
    public const string Finance = "Finance";
    public const string Any = Admin + "," + Finance;
}

/// <summary>
/// Identity's stores in PostgreSQL. It maps tables that <c>migrations/</c> defines (no EF migrations, no
/// EnsureCreated); the gateway's own tables are read and written through Core's stores.
/// </summary>
public sealed class AdminDbContext(DbContextOptions<AdminDbContext> options) : IdentityDbContext<AdminUser>(options)
{
    protected override void OnModelCreating(ModelBuilder builder)
    {
        base.OnModelCreating(builder);
        builder.Entity<AdminUser>().ToTable("admin_users");
        builder.Entity<IdentityRole>().ToTable("admin_roles");
        builder.Entity<IdentityUserRole<string>>().ToTable("admin_user_roles");
        builder.Entity<IdentityUserClaim<string>>().ToTable("admin_user_claims");
        builder.Entity<IdentityUserLogin<string>>().ToTable("admin_user_logins");
        builder.Entity<IdentityUserToken<string>>().ToTable("admin_user_tokens");
        builder.Entity<IdentityRoleClaim<string>>().ToTable("admin_role_claims");
    }
}
