using Npgsql;

namespace Gateway.Core.Persistence;

/// <summary>
/// The connections that need a PostgreSQL session of their own, which a pooler in transaction mode (PgBouncer's
/// <c>pool_mode = transaction</c>) cannot give: <c>LISTEN</c> (<see cref="ChangeListener"/>: a notification reaches the
/// server connection that listened, which the pooler has long handed to someone else) and the migration's session advisory
/// lock (<see cref="Migrator"/>: a lock taken on one server connection and released on another is never released). They use
/// <c>ConnectionStrings:GatewayDirect</c> when set (the database itself, past the pooler), else the ordinary data source.
/// Everything else works per transaction and goes through <c>ConnectionStrings:Gateway</c>, pooled or not.
/// </summary>
public sealed class DirectDatabase(NpgsqlDataSource pooled, string? directConnectionString) : OptionalDatabase(pooled, directConnectionString)
{
    public const string ConnectionStringName = "GatewayDirect";

    /// <summary>
    /// True when a direct connection string is configured, which says <c>ConnectionStrings:Gateway</c> may be a pooler in
    /// transaction mode: state that would outlive a transaction on a server connection must not be kept there.
    /// </summary>
    public bool PooledSeparately => Configured;
}
