using EfReplicaInterceptor.Failover;
using Npgsql;

namespace EfReplicaInterceptor.Topology;

/// <summary>
/// The monitor's line to one server: a connection it keeps open between probes, and the probe deadline
/// (<c>HealthCheckTimeout</c>) enforced without the server's cooperation (<see cref="OperationWatch"/>): a hung server's
/// probe ends at the deadline with its connection broken, and the next probe opens a new one. One probe at a time per
/// server; probes of different servers never wait for each other.
/// </summary>
/// <param name="server">The server.</param>
/// <param name="turns">The turns to count from (a server that joins a running cluster starts at the current round).</param>
internal sealed class ProbeChannel(WatchedServer server, long turns = 0) : IAsyncDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private NpgsqlConnection? _connection;

    public WatchedServer Server { get; } = server;

    /// <summary>Completed probe turns (answered or not); the monitor's rounds count the slowest server.</summary>
    public long Turns => Interlocked.Read(ref _turns);

    private long _turns = turns;

    /// <summary>Counts one turn of this server's loop (or of a forced round), whether it probed or skipped the server.</summary>
    public void CountTurn() => Interlocked.Increment(ref _turns);

    /// <summary>
    /// Runs <paramref name="probe"/> on the kept connection (opened when needed) within the probe deadline. Any failure
    /// drops the connection; a missed deadline throws a <see cref="ServerDeadlineException"/>. An answer counts as the
    /// server's sign of life.
    /// </summary>
    public async Task<T> ProbeAsync<T>(Func<NpgsqlConnection, Task<T>> probe, CancellationToken stopping)
    {
        await _gate.WaitAsync(stopping).ConfigureAwait(false);
        try
        {
            // The kept connection is the call's until it succeeds (a failure disposes it: the next probe opens a new one).
            var kept = _connection;
            _connection = null;
            return await ServerCall.RunAsync<Probe<T>, T>(Server, Server.WatchProbe(stopping), kept, new Probe<T>(this, probe), async: true, stopping).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>A probe on the channel's connection, which it keeps when the probe succeeds.</summary>
    private readonly struct Probe<T>(ProbeChannel channel, Func<NpgsqlConnection, Task<T>> probe) : IServerStatement<T>
    {
        public NpgsqlCommand? CreateCommand(NpgsqlConnection connection) => null; // the probe makes its own

        public Task<T> RunAsync(NpgsqlConnection connection, NpgsqlCommand? command) => probe(connection);

        public T Run(NpgsqlConnection connection, NpgsqlCommand? command) => throw new NotSupportedException("Probes run asynchronously.");

        public CallHandover Succeeded(T result, OperationWatch watch, NpgsqlConnection connection)
        {
            channel._connection = connection;
            return CallHandover.Connection;
        }

        public void Failed(Exception exception, FailurePhase phase, NpgsqlConnection? connection)
        {
        }
    }

    private static async ValueTask DropAsync(NpgsqlConnection? connection)
    {
        if (connection is null)
        {
            return;
        }

        try
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
            // A broken connection may fail to close cleanly; it is gone either way.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        await DropAsync(_connection).ConfigureAwait(false);
        _connection = null;
        _gate.Dispose();
    }
}
