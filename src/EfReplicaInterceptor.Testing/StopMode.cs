namespace EfReplicaInterceptor.Testing;

/// <summary>How <see cref="PostgresServer.StopAsync"/> shuts a server down (<c>pg_ctl stop -m</c>).</summary>
public enum StopMode
{
    /// <summary>
    /// <c>-m fast</c>: sessions are terminated (clients see SQLSTATE 57P01), the server writes a
    /// shutdown checkpoint and exits cleanly.
    /// </summary>
    Fast,

    /// <summary>
    /// <c>-m immediate</c>: every server process is killed at once, like a crash; queries in flight
    /// see the connection drop and the next start runs crash recovery.
    /// </summary>
    Immediate,
}
