using Npgsql;

namespace EfReplicaInterceptor.Failover;

/// <summary>What of a successful <see cref="ServerCall"/> outlives it, handed to the statement's result.</summary>
[Flags]
internal enum CallHandover
{
    /// <summary>Nothing: the call ends its watch and disposes its connection.</summary>
    None = 0,

    /// <summary>The result keeps the connection (a reader that closes it, a kept probe connection): not disposed here.</summary>
    Connection = 1,

    /// <summary>The result keeps the watch (a reader watched until it is closed): not completed here.</summary>
    Watch = 2,
}

/// <summary>
/// One statement the library sends to a server under an <see cref="OperationWatch"/> (see <see cref="ServerCall"/>). A
/// struct or a sealed class, passed as a generic argument: nothing is allocated to call it.
/// </summary>
/// <typeparam name="T">The statement's result.</typeparam>
internal interface IServerStatement<T>
{
    /// <summary>The command to run on <paramref name="connection"/>, attached to the watch (cancelled when the caller cancels), or null when the run makes its own.</summary>
    NpgsqlCommand? CreateCommand(NpgsqlConnection connection);

    /// <summary>Runs the statement (asynchronously); the caller's token is not handed to Npgsql (see <see cref="OperationWatch"/>).</summary>
    Task<T> RunAsync(NpgsqlConnection connection, NpgsqlCommand? command);

    /// <summary>Runs the statement synchronously.</summary>
    T Run(NpgsqlConnection connection, NpgsqlCommand? command);

    /// <summary>The run answered with <paramref name="result"/> in time: what of the call the result keeps.</summary>
    CallHandover Succeeded(T result, OperationWatch watch, NpgsqlConnection connection);

    /// <summary>
    /// The call failed with <paramref name="exception"/> (already the watch's error when it gave up), while its connection
    /// (null when opening failed) can still be looked at: the place to classify the failure.
    /// </summary>
    void Failed(Exception exception, FailurePhase phase, NpgsqlConnection? connection);
}

/// <summary>
/// The one way the library runs anything against a server (reads, position captures, replay checks, probes, split-brain
/// probes, the catalog query): open the connection under the watch (or take the kept one), attach the watch, run, complete
/// the watch, all in one place. A server that stays silent past the watch's deadline has the connection broken and the call
/// fails with a <see cref="ServerDeadlineException"/>; the caller's cancellation the same way with an
/// <see cref="OperationCanceledException"/>; any answer (a result, or an error the server itself sent, not a pooler's word
/// that it cannot reach the server) counts as the server's sign of life; a connection the watch broke has its pool cleared
/// (its idle siblings lead to the same silence).
/// </summary>
internal static class ServerCall
{
    /// <summary>
    /// Runs <paramref name="statement"/> on <paramref name="server"/> under <paramref name="watch"/>, on
    /// <paramref name="connection"/> when given (a kept connection, disposed if the call fails) or else on one opened from the
    /// server's data source. With <paramref name="async"/> false every step runs synchronously. A
    /// <paramref name="borrowed"/> connection (the caller's, EF's own) is never disposed here, whatever happens.
    /// </summary>
    public static async ValueTask<T> RunAsync<TStatement, T>(
        WatchedServer server, OperationWatch watch, NpgsqlConnection? connection, TStatement statement, bool async, CancellationToken cancellationToken, bool borrowed = false)
        where TStatement : IServerStatement<T>
    {
        if (borrowed && !ConnectionBreaker.IsSupported)
        {
            // The watch could only end a hung call by disposing its connection, and a borrowed one is not the library's to
            // dispose (EF would find its own connection gone): run on a connection of the library's own instead.
            connection = null;
            borrowed = false;
        }

        if (connection is null)
        {
            try
            {
                connection = await watch.OpenAsync(server.DataSource, async, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception exception)
            {
                watch.Complete();
                if (exception is PostgresException refused && ServerLiveness.IsServerAnswer(refused))
                {
                    server.Liveness.Answered(); // refused (too many connections, shutting down): an answer, not a hang
                }

                statement.Failed(exception, FailurePhase.Opening, connection: null);
                throw;
            }
        }

        var handover = CallHandover.None;
        var succeeded = false;
        try
        {
            var command = statement.CreateCommand(connection);
            watch.Attach(connection, command);
            var result = async
                ? await watch.RunAsync(statement.RunAsync(connection, command), connection).ConfigureAwait(false)
                : statement.Run(connection, command);
            if (watch.Verdict != WatchVerdict.None)
            {
                (result as IDisposable)?.Dispose(); // a reader on a broken connection
                throw watch.Failure(inner: null);
            }

            server.Liveness.Answered();
            handover = statement.Succeeded(result, watch, connection);
            succeeded = true;
            return result;
        }
        catch (Exception exception) when (watch.Complete() != WatchVerdict.None || cancellationToken.IsCancellationRequested)
        {
            var failure = exception is ServerDeadlineException or OperationCanceledException ? exception
                : watch.Verdict != WatchVerdict.None ? watch.Failure(exception)
                : new OperationCanceledException("The operation was cancelled.", exception, cancellationToken);
            if (watch.Verdict != WatchVerdict.None)
            {
                server.DataSource.Clear(); // the broken connection is never pooled again, nor its idle siblings
            }

            statement.Failed(failure, FailurePhase.Executing, connection);
            throw failure;
        }
        catch (Exception exception)
        {
            if (exception is PostgresException error && ServerLiveness.IsServerAnswer(error))
            {
                server.Liveness.Answered(); // the server's own error: it is not hung
            }

            // Classified here, before the connection is disposed: its state after the failure says whether the session died.
            statement.Failed(exception, FailurePhase.Executing, connection);
            throw;
        }
        finally
        {
            if (!borrowed && (handover & CallHandover.Connection) == 0 && !watch.Abandoned)
            {
                await DisposeAsync(connection, async, quietly: !succeeded).ConfigureAwait(false);
            }

            if ((handover & CallHandover.Watch) == 0)
            {
                watch.Complete();
            }
        }
    }

    private static async ValueTask DisposeAsync(NpgsqlConnection connection, bool async, bool quietly)
    {
        try
        {
            if (async)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                connection.Dispose();
            }
        }
        catch (Exception) when (quietly)
        {
            // A broken connection may fail to close cleanly; it is gone either way, and the call's own outcome is what counts.
        }
    }
}
