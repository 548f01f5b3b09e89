using Npgsql;

namespace Gateway.Core.Persistence;

/// <summary>
/// Where spend reports, the dashboard and the CSV and FOCUS exports read: <c>ConnectionStrings:GatewayReports</c> when set (a
/// read replica, so finance's long ranges never compete with the request path on the primary), else the ordinary data
/// source. Only reads go there; a replica's lag (usually under a second) shows as rows not yet in a report.
/// </summary>
public sealed class ReportsDatabase(NpgsqlDataSource primary, string? reportsConnectionString) : OptionalDatabase(primary, reportsConnectionString)
{
    public const string ConnectionStringName = "GatewayReports";
}
