using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;

namespace Gateway.Admin.Data;

/// <summary>An admin app user (ASP.NET Core Identity).</summary>
public sealed class AdminUser : IdentityUser
{
    /// <summary>When the user last signed in (password or single sign-on); null if never. Set by <c>AdminUsers.RecordSignInAsync</c> only.</summary>
    public DateTimeOffset? LastSignInAt { get; set; }
}

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
        // Identity saves every column of a user it changes: a user loaded before a sign-in and saved after it would write the
        // older sign-in time back. Only the sign-in's own UPDATE writes it.
        builder.Entity<AdminUser>().Property(u => u.LastSignInAt).Metadata.SetAfterSaveBehavior(PropertySaveBehavior.Ignore);
        builder.Entity<IdentityRole>().ToTable("admin_roles");
        builder.Entity<IdentityUserRole<string>>().ToTable("admin_user_roles");
        builder.Entity<IdentityUserClaim<string>>().ToTable("admin_user_claims");
        builder.Entity<IdentityUserLogin<string>>().ToTable("admin_user_logins");
        builder.Entity<IdentityUserToken<string>>().ToTable("admin_user_tokens");
        builder.Entity<IdentityRoleClaim<string>>().ToTable("admin_role_claims");
    }
}
