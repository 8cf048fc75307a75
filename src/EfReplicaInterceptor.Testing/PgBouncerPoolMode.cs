namespace EfReplicaInterceptor.Testing;

/// <summary>PgBouncer's <c>pool_mode</c>: when a server connection goes back to its pool.</summary>
public enum PgBouncerPoolMode
{
    /// <summary><c>session</c>: a client keeps one server connection until it disconnects.</summary>
    Session,

    /// <summary>
    /// <c>transaction</c>: a client holds a server connection for one transaction only. Npgsql needs
    /// <c>No Reset On Close=true;Max Auto Prepare=0</c> (no session state, no auto-prepared statements).
    /// </summary>
    Transaction,
}
