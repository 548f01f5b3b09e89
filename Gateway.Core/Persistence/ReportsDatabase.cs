using Npgsql;

namespace Gateway.Core.Persistence;

/// <summary>
/// Where spend reports, the dashboard and the CSV and FOCUS exports read: <c>ConnectionStrings:GatewayReports</c> when set (a
/// read replica, so finance's long ranges never compete with the request path on the primary), else the ordinary data
/// source. Only reads go there; a replica's lag (usually under a second) shows as rows not yet in a report.
/// </summary>
public sealed class ReportsDatabase : IDisposable
{
    public const string ConnectionStringName = "GatewayReports";

    private readonly bool _owned;

    public ReportsDatabase(NpgsqlDataSource primary, string? reportsConnectionString)
    {
        _owned = !string.IsNullOrWhiteSpace(reportsConnectionString);
        DataSource = _owned ? NpgsqlDataSource.Create(reportsConnectionString!) : primary;
    }

    /// <summary>The replica's data source, or the ordinary one when none is configured.</summary>
    public NpgsqlDataSource DataSource { get; }

    public void Dispose()
    {
        if (_owned) DataSource.Dispose();
    }
}
