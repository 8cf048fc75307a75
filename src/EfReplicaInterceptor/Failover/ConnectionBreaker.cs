using System.Net.Sockets;
using System.Reflection;
using Npgsql;

namespace EfReplicaInterceptor.Failover;

/// <summary>
/// Breaks an Npgsql connection from outside, while another thread may be blocked reading from it: the one place the
/// library reaches into Npgsql's internals.
/// </summary>
/// <remarks>
/// <para>
/// Why internals: against a hung server (SIGSTOP, a frozen VM: the kernel still accepts and acknowledges TCP) nothing
/// public returns. Npgsql's command timeout and a cancelled <see cref="CancellationToken"/> both first send PostgreSQL's
/// cancel request on a new connection, which the hung server never answers (measured: a 2 s command timeout returned after
/// about 32 s). <see cref="NpgsqlConnection.Close"/> on a busy connection would try to drain the pending result (and
/// hang), or hand the connector back to its pool while a read is still pending on it. Npgsql keeps the socket in the
/// connector (<c>NpgsqlConnection.Connector</c>, internal; its field <c>_socket</c>), and has no public way to abort it.
/// </para>
/// <para>
/// What it does: <see cref="Socket.Shutdown"/> on that socket, nothing else. The thread blocked in the read (sync or
/// async) wakes with end of stream, and Npgsql itself breaks the connector as it does for a server that went away: the
/// connection's state becomes <c>Broken</c> and a broken connector is never returned to the pool. Npgsql's own state is
/// only ever touched by the thread that owns the connection.
/// </para>
/// <para>
/// If a future Npgsql renames these members, <see cref="IsSupported"/> is false (a unit test fails loudly) and the library
/// falls back to abandoning the operation: async callers stop waiting at the deadline and the connection is disposed
/// when the operation ends, its pool cleared so it is not reused; a synchronous caller then waits as long as Npgsql does.
/// </para>
/// </remarks>
internal static class ConnectionBreaker
{
    private static readonly PropertyInfo? ConnectorProperty =
        typeof(NpgsqlConnection).GetProperty("Connector", BindingFlags.Instance | BindingFlags.NonPublic);

    private static readonly FieldInfo? SocketField =
        ConnectorProperty?.PropertyType.GetField("_socket", BindingFlags.Instance | BindingFlags.NonPublic);

    /// <summary>True when this Npgsql version exposes the members <see cref="TryBreak"/> needs (set by unit tests only, to
    /// prove the paths taken when it does not).</summary>
    public static bool IsSupported { get; internal set; } = SocketField?.FieldType == typeof(Socket);

    /// <summary>Shuts the connection's socket down; false when there is no socket to shut (not open, or not supported).</summary>
    public static bool TryBreak(NpgsqlConnection connection)
    {
        if (!IsSupported)
        {
            return false;
        }

        try
        {
            if (ConnectorProperty!.GetValue(connection) is { } connector && SocketField!.GetValue(connector) is Socket socket)
            {
                socket.Shutdown(SocketShutdown.Both);
                return true;
            }
        }
        catch (Exception exception) when (exception is ObjectDisposedException or SocketException or TargetInvocationException)
        {
            // Closed meanwhile: nothing left to break.
        }

        return false;
    }
}
