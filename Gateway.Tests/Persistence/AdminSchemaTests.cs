extern alias admin;

using admin::Gateway.Admin.Data;
using Gateway.Tests.Fixtures;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Tests.Persistence;

/// <summary>The admin app's EF Core model maps onto the tables migrations/ creates (no EF migrations exist to keep them in step).</summary>
public sealed class AdminSchemaTests(TestEnvironment env)
{
    [Fact]
    public async Task AdminDbContext_EveryEntitySet_QueriesTheMigratedDatabase()
    {
        var options = new DbContextOptionsBuilder<AdminDbContext>().UseNpgsql(env.Postgres.ConnectionString).UseSnakeCaseNamingConvention().Options;
        await using var db = new AdminDbContext(options);

        await db.Users.CountAsync(); // throws when a mapped column or table is missing
        Assert.Equal(["Admin", "Finance"], await db.Roles.OrderBy(r => r.Name).Select(r => r.Name!).ToListAsync());
        await db.UserRoles.CountAsync();
        await db.UserClaims.CountAsync();
        await db.UserLogins.CountAsync();
        await db.UserTokens.CountAsync();
        await db.RoleClaims.CountAsync();
    }
}
