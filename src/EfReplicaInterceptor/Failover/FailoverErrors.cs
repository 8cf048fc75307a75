using System.Net.Sockets;
using Npgsql;

namespace EfReplicaInterceptor.Failover;

/// <summary>What kind of failure an exception from a server is, seen through EF's and Npgsql's wrapping.</summary>
internal enum ServerErrorKind
{
    /// <summary>Not a failover error: a constraint violation, a syntax error, a timeout or cancellation the application asked for, bad credentials, ...</summary>
    None = 0,

    /// <summary>No session could be opened: connection refused or reset, connect timeout, 08xxx, 57P03 (starting up / shutting down), 53300 (too many connections).</summary>
    Unreachable,

    /// <summary>The session ended under the command: 57P01/57P02 (admin or crash shutdown), end of stream, broken connection.</summary>
    ConnectionLost,

    /// <summary>25006: the server is read-only (a standby, or a primary that was demoted).</summary>
    ReadOnly,

    /// <summary>40001 raised by a hot standby: the query was cancelled by a recovery conflict.</summary>
    RecoveryConflict,
}

/// <summary>When the failure happened.</summary>
internal enum FailurePhase
{
    /// <summary>While opening the connection: nothing was sent.</summary>
    Opening,

    /// <summary>While the command ran.</summary>
    Executing,
}

/// <summary>
/// Recognises failover errors precisely, looking through inner exceptions (EF wraps transient errors). The exact list is in
/// the README; anything not on it is never treated as failover.
/// </summary>
internal static class FailoverErrors
{
    public static ServerErrorKind Classify(Exception exception, FailurePhase phase, bool onStandby)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            switch (current)
            {
                case OperationCanceledException:
                    return ServerErrorKind.None;
                case PostgresException postgres:
                    return ClassifySqlState(postgres.SqlState, phase, onStandby);
                case NpgsqlException npgsql when phase == FailurePhase.Opening:
                    // Refused, reset, DNS, connect timeout: no session was opened.
                    return npgsql.InnerException is PostgresException inner ? ClassifySqlState(inner.SqlState, phase, onStandby) : ServerErrorKind.Unreachable;
                case NpgsqlException { InnerException: TimeoutException }:
                    return ServerErrorKind.None; // the application's command timeout
                case NpgsqlException { InnerException: EndOfStreamException or IOException or SocketException }:
                    return ServerErrorKind.ConnectionLost;
                case NpgsqlException { InnerException: null, IsTransient: true }:
                    return ServerErrorKind.ConnectionLost;
                case SocketException:
                    return phase == FailurePhase.Opening ? ServerErrorKind.Unreachable : ServerErrorKind.ConnectionLost;
                case TimeoutException when phase == FailurePhase.Opening:
                    return ServerErrorKind.Unreachable;
            }
        }

        return ServerErrorKind.None;
    }

    private static ServerErrorKind ClassifySqlState(string sqlState, FailurePhase phase, bool onStandby)
    {
        if (sqlState.StartsWith("08", StringComparison.Ordinal))
        {
            return phase == FailurePhase.Opening ? ServerErrorKind.Unreachable : ServerErrorKind.ConnectionLost;
        }

        return sqlState switch
        {
            "57P01" or "57P02" => phase == FailurePhase.Opening ? ServerErrorKind.Unreachable : ServerErrorKind.ConnectionLost,
            "57P03" or "53300" => ServerErrorKind.Unreachable,
            "25006" => ServerErrorKind.ReadOnly,
            "40001" when onStandby => ServerErrorKind.RecoveryConflict,
            _ => ServerErrorKind.None,
        };
    }

    /// <summary>A stable name for logs and metrics.</summary>
    public static string GetName(ServerErrorKind kind) => kind switch
    {
        ServerErrorKind.Unreachable => "unreachable",
        ServerErrorKind.ConnectionLost => "connection-lost",
        ServerErrorKind.ReadOnly => "read-only",
        ServerErrorKind.RecoveryConflict => "recovery-conflict",
        _ => "none",
    };
}
