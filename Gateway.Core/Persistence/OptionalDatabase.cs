using Npgsql;

namespace Gateway.Core.Persistence;

/// <summary>
/// A database connection some work may be given apart from the ordinary one (<see cref="DirectDatabase"/>,
/// <see cref="ReportsDatabase"/>): its own data source when its connection string is set, else the ordinary data source.
/// </summary>
public abstract class OptionalDatabase : IDisposable
{
    protected OptionalDatabase(NpgsqlDataSource ordinary, string? connectionString)
    {
        Configured = !string.IsNullOrWhiteSpace(connectionString);
        DataSource = Configured ? NpgsqlDataSource.Create(connectionString!) : ordinary;
    }

    /// <summary>Where this work connects: its own data source, or the ordinary one when none is configured.</summary>
    public NpgsqlDataSource DataSource { get; }

    /// <summary>Whether a connection string of its own is configured (and <see cref="DataSource"/> is owned here).</summary>
    protected bool Configured { get; }

    public void Dispose()
    {
        if (Configured) DataSource.Dispose();
        GC.SuppressFinalize(this);
    }
}
