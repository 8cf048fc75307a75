using System.Net.Sockets;
using Npgsql;

namespace EfReplicaInterceptor.Failover;

/// <summary>What kind of failure an exception from a server is, seen through EF's and Npgsql's wrapping.</summary>
internal enum ServerErrorKind
{
    /// <summary>Not a failover error: a constraint violation, a syntax error, a cancellation the application asked for, ...</summary>
    None = 0,

    /// <summary>The server could not be reached or refused new sessions (refused, reset, 08xxx, 57P03, too many connections).</summary>
    Unreachable,

    /// <summary>The session ended under the command (57P01/57P02 admin or crash shutdown, end of stream, broken connection).</summary>
    ConnectionLost,

    /// <summary>The server is read-only (25006): a standby, or a primary that was demoted.</summary>
    ReadOnly,

    /// <summary>A hot standby cancelled the query because of a recovery conflict (40001 on a standby).</summary>
    RecoveryConflict,
}

/// <summary>Recognises failover errors precisely. Anything not listed here is never treated as failover.</summary>
internal static class FailoverErrors
{
    /// <summary>Classifies <paramref name="exception"/> (looking through inner exceptions) as raised by a read on a replica.</summary>
    public static ServerErrorKind Classify(Exception exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            switch (current)
            {
                case PostgresException postgres:
                    return ClassifySqlState(postgres.SqlState);
                case NpgsqlException npgsql when npgsql.InnerException is SocketException or TimeoutException && npgsql.IsTransient:
                    return ServerErrorKind.Unreachable;
                case NpgsqlException npgsql when npgsql.InnerException is EndOfStreamException or IOException:
                    return ServerErrorKind.ConnectionLost;
                case NpgsqlException { InnerException: null } npgsql when npgsql.IsTransient:
                    return ServerErrorKind.Unreachable;
                case SocketException:
                    return ServerErrorKind.Unreachable;
                case OperationCanceledException:
                    return ServerErrorKind.None;
            }
        }

        return ServerErrorKind.None;
    }

    private static ServerErrorKind ClassifySqlState(string sqlState)
    {
        if (sqlState.StartsWith("08", StringComparison.Ordinal))
        {
            return ServerErrorKind.Unreachable;
        }

        return sqlState switch
        {
            "57P01" or "57P02" => ServerErrorKind.ConnectionLost,   // admin_shutdown, crash_shutdown
            "57P03" or "53300" => ServerErrorKind.Unreachable,      // cannot_connect_now, too_many_connections
            "25006" => ServerErrorKind.ReadOnly,                    // read_only_sql_transaction
            "40001" => ServerErrorKind.RecoveryConflict,            // serialization_failure (on a standby: recovery conflict)
            _ => ServerErrorKind.None,
        };
    }

    /// <summary>A stable name for logs.</summary>
    public static string GetName(ServerErrorKind kind) => kind switch
    {
        ServerErrorKind.Unreachable => "unreachable",
        ServerErrorKind.ConnectionLost => "connection-lost",
        ServerErrorKind.ReadOnly => "read-only",
        ServerErrorKind.RecoveryConflict => "recovery-conflict",
        _ => "none",
    };
}
