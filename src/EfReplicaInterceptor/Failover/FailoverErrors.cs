using System.Data;
using System.Data.Common;
using System.Net.Sockets;
using Npgsql;

namespace EfReplicaInterceptor.Failover;

/// <summary>What kind of failure an exception from a server is, seen through EF's and Npgsql's wrapping.</summary>
internal enum ServerErrorKind
{
    /// <summary>
    /// Not a failover error: the statement's own error (a constraint violation, a syntax error, 08P01 at Bind, 53xxx, 55P03,
    /// 58xxx with the session alive), a timeout or cancellation the application asked for, bad credentials, ... The session
    /// (if any) survives; the caller gets the server's exception as it is, once.
    /// </summary>
    None = 0,

    /// <summary>No session could be opened: connection refused or reset, connect timeout, 08000/08001/08003/08004/08006, 57P01/57P02 while opening, 57P03 (starting up / shutting down), 53300 (too many connections).</summary>
    Unreachable,

    /// <summary>The session ended under the command: 57P01/57P02 (admin or crash shutdown), 08000/08003/08006, any FATAL or PANIC error, end of stream, a socket error, a connection Npgsql left broken.</summary>
    ConnectionLost,

    /// <summary>25006: the server is read-only (a standby, or a primary that was demoted).</summary>
    ReadOnly,

    /// <summary>40001 or 40P01 raised by a hot standby: a recovery conflict cancelled the query (a buffer-pin conflict reports 40P01).</summary>
    RecoveryConflict,

    /// <summary>57P05: the server had already ended the idle session (<c>idle_session_timeout</c>) when the command reached it. Nothing ran; the server is fine; safe to run anywhere.</summary>
    SessionExpired,

    /// <summary>
    /// The server did not answer within the library's own deadline (it also failed to answer anything else, such as the
    /// monitor's probes): a hung host. The library abandoned the operation and broke its connection.
    /// </summary>
    Unresponsive,
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
/// Recognises failover errors precisely, looking through inner exceptions (EF wraps transient errors). Failover means the
/// session is gone or never existed: decided from what happened to the connection (a FATAL or PANIC error, end of stream, a
/// socket error, refused or timed out while opening, the connection broken afterwards) and from a short list of SQLSTATEs,
/// never from an SQLSTATE class. Everything else is the statement's own error. The exact list is in docs/failover-and-errors.md.
/// </summary>
internal static class FailoverErrors
{
    /// <summary>
    /// Whether a statement the library ran itself on a connection of its own (a position capture, a replay check) failed over,
    /// whichever phase it failed in (such a statement opens its connection first: "No suitable host was found." from a
    /// multi-host data source during a promotion is a failure to open).
    /// </summary>
    public static bool IsFailoverOfOwnStatement(Exception exception)
        => Classify(exception, FailurePhase.Executing, onStandby: false) is not ServerErrorKind.None
            || Classify(exception, FailurePhase.Opening, onStandby: false) is not ServerErrorKind.None;

    /// <param name="exception">The error, possibly wrapped by EF.</param>
    /// <param name="phase">Opening the connection, or running a command on it.</param>
    /// <param name="onStandby">The command ran on a hot standby (a 40001 or 40P01 there is a recovery conflict).</param>
    /// <param name="connection">The connection the command ran on, looked at after the failure (null: unknown). When the error
    /// carries no word from the server, a connection Npgsql left broken while executing means the session is gone.</param>
    public static ServerErrorKind Classify(Exception exception, FailurePhase phase, bool onStandby, DbConnection? connection = null)
    {
        var sawNpgsql = false;
        for (var current = exception; current is not null; current = current.InnerException)
        {
            switch (current)
            {
                case ServerDeadlineException:
                    return ServerErrorKind.Unresponsive;
                case OperationCanceledException:
                    return ServerErrorKind.None;
                case PostgresException postgres:
                    return ClassifyServerError(postgres, phase, onStandby);
                case NpgsqlException npgsql when phase == FailurePhase.Opening:
                    // Refused, reset, DNS, connect timeout: no session was opened.
                    return npgsql.InnerException is PostgresException inner ? ClassifyServerError(inner, phase, onStandby) : ServerErrorKind.Unreachable;
                case NpgsqlException { InnerException: TimeoutException }:
                    return ServerErrorKind.None; // the application's command timeout
                case NpgsqlException { InnerException: EndOfStreamException or IOException or SocketException }:
                    return ServerErrorKind.ConnectionLost;
                case NpgsqlException { InnerException: null, IsTransient: true }:
                    return ServerErrorKind.ConnectionLost;
                case NpgsqlException:
                    sawNpgsql = true;
                    break;
                case SocketException:
                    return phase == FailurePhase.Opening ? ServerErrorKind.Unreachable : ServerErrorKind.ConnectionLost;
                case TimeoutException when phase == FailurePhase.Opening:
                    return ServerErrorKind.Unreachable;
            }
        }

        // An Npgsql error of another kind: failover only if it took the session with it.
        return sawNpgsql && phase == FailurePhase.Executing && IsGone(connection) ? ServerErrorKind.ConnectionLost : ServerErrorKind.None;
    }

    /// <summary>
    /// The listed SQLSTATEs first (they say what happened exactly), then the session's fate as the server reports it: a FATAL
    /// or PANIC error ends the session. Anything else is the statement's error and the session lives on.
    /// </summary>
    private static ServerErrorKind ClassifyServerError(PostgresException error, FailurePhase phase, bool onStandby)
    {
        var lost = phase == FailurePhase.Opening ? ServerErrorKind.Unreachable : ServerErrorKind.ConnectionLost;
        switch (error.SqlState)
        {
            case "57P05":
                return ServerErrorKind.SessionExpired; // only ever met on a pooled session, whatever phase the caller names
            case "57P01" or "57P02":
            case "08000" or "08001" or "08003" or "08004" or "08006":
                return lost;
            case "57P03" or "53300":
                return ServerErrorKind.Unreachable;
            case "25006":
                return ServerErrorKind.ReadOnly;
            case "40001" or "40P01" when onStandby:
                return ServerErrorKind.RecoveryConflict;
        }

        if (phase == FailurePhase.Opening)
        {
            // A FATAL while opening that is not listed is the configuration's (28P01 bad password, 3D000 no such database,
            // 28000 no pg_hba.conf entry, ...): another server would refuse the same way.
            return ServerErrorKind.None;
        }

        // The server's own verdict wins over the connection's state: Npgsql 10 breaks its connection after an 08P01 ERROR
        // (measured), though the server kept the session and the statement alone was at fault.
        return error.InvariantSeverity is "FATAL" or "PANIC" ? ServerErrorKind.ConnectionLost : ServerErrorKind.None;
    }

    /// <summary>
    /// Npgsql broke the connection: its session is gone. A closed connection says nothing: a reader opened with
    /// <c>CommandBehavior.CloseConnection</c> closes its connection after any error, a statement's own included.
    /// </summary>
    private static bool IsGone(DbConnection? connection) => connection switch
    {
        null => false,
        NpgsqlConnection npgsql => (npgsql.FullState & ConnectionState.Broken) != 0,
        _ => (connection.State & ConnectionState.Broken) != 0,
    };

    /// <summary>A stable name for logs and metrics.</summary>
    public static string GetName(ServerErrorKind kind) => kind switch
    {
        ServerErrorKind.Unreachable => "unreachable",
        ServerErrorKind.ConnectionLost => "connection-lost",
        ServerErrorKind.ReadOnly => "read-only",
        ServerErrorKind.RecoveryConflict => "recovery-conflict",
        ServerErrorKind.SessionExpired => "session-expired",
        ServerErrorKind.Unresponsive => "unresponsive",
        _ => "none",
    };
}
