using EfReplicaInterceptor.Failover;
using Npgsql;
using Npgsql.PostgresTypes;

namespace EfReplicaInterceptor.Topology;

/// <summary>
/// What a replica's data source knows of the server's types. Npgsql loads them once, on the pool's first connection (the
/// monitor's first probe, usually at start-up): a type created later (an enum an in-process migration added, after which
/// EF reloads the types of the primary's connection only) is unknown to the replica's sessions, and a read of it there
/// failed ("Reading as 'Mood' is not supported for fields having DataTypeName '-.-'") where the same read on the primary
/// succeeded. A replica read whose result names a type its session does not know (<see cref="Lacks"/>) gives that result
/// up before any row reaches EF (<see cref="StaleTypesException"/>), has the types reloaded (<see cref="ReloadAsync"/>:
/// under the probe deadline, one reload shared by the reads that met the same change) and runs again. A type still unknown
/// after a reload that began after the read met it is one Npgsql does not load (a table's row type): it is not reloaded for
/// again.
/// </summary>
internal sealed class ReplicaTypes(TimeProvider timeProvider)
{
    private readonly object _gate = new();
    private uint[] _unloadable = [];
    private TaskCompletionSource? _reload; // the latest reload (async reads share it)
    private long _reloadStartedAt = long.MinValue;
    private int _reloads;

    /// <summary>How many times the types were reloaded (for tests and diagnostics).</summary>
    public int Reloads => Volatile.Read(ref _reloads);

    /// <summary>Whether the result names a type the session's loaded types lack, other than one a reload did not bring.</summary>
    public bool Lacks(NpgsqlDataReader reader)
    {
        var fields = reader.FieldCount;
        for (var i = 0; i < fields; i++)
        {
            if (reader.GetPostgresType(i) is UnknownBackendType && Array.IndexOf(Volatile.Read(ref _unloadable), reader.GetDataTypeOID(i)) < 0)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The read's result names a type its session lacks: given up (the reader disposed), to run again after a reload.</summary>
    public StaleTypesException Stale() => new(timeProvider.GetTimestamp());

    /// <summary>
    /// Reloads the types of <paramref name="server"/>'s data source (a single host) under its probe deadline, unless a reload
    /// that began after the read met the stale result (<paramref name="stale"/>) is running or done: the read waits for that
    /// one (a synchronous read too: the wait ends with that reload's deadline). True when such a reload succeeded (a session
    /// rented from now on has the types the server had when the read met them); false when it failed (the run that follows
    /// says what the server does). The caller's cancellation ends the wait, not the reload.
    /// </summary>
    public async ValueTask<bool> ReloadAsync(WatchedServer server, StaleTypesException stale, bool async, CancellationToken cancellationToken)
    {
        TaskCompletionSource reload;
        var owner = false;
        lock (_gate)
        {
            if (_reload is null || _reloadStartedAt < stale.DetectedAt)
            {
                _reload = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _reloadStartedAt = timeProvider.GetTimestamp();
                owner = true;
            }

            reload = _reload;
        }

        if (owner)
        {
            if (async)
            {
                _ = RunReloadAsync(server, reload, async: true); // awaited below like any other read's, so that cancellation ends the wait
            }
            else
            {
                RunReloadAsync(server, reload, async: false).GetAwaiter().GetResult(); // completes synchronously
            }
        }

        try
        {
            if (async)
            {
                await reload.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            else
            {
                reload.Task.Wait(cancellationToken);
            }

            return true;
        }
        catch (Exception)
        {
            cancellationToken.ThrowIfCancellationRequested();
            return false;
        }
    }

    /// <summary>The result still names types its session does not know after a reload: Npgsql does not load them; not reloaded for again (until the next reload).</summary>
    public void StillUnknown(NpgsqlDataReader reader)
    {
        lock (_gate)
        {
            var known = new List<uint>(_unloadable);
            for (var i = 0; i < reader.FieldCount; i++)
            {
                if (reader.GetPostgresType(i) is UnknownBackendType && !known.Contains(reader.GetDataTypeOID(i)))
                {
                    known.Add(reader.GetDataTypeOID(i));
                }
            }

            Volatile.Write(ref _unloadable, [.. known]);
        }
    }

    /// <summary>
    /// One reload, completing <paramref name="reload"/> whatever happens. It forgets the types no reload brought: a replica
    /// behind a proxy may have answered from a standby that was behind, and the next read of such a type asks again.
    /// </summary>
    private async Task RunReloadAsync(WatchedServer server, TaskCompletionSource reload, bool async)
    {
        try
        {
            await ServerCall.RunAsync<ReloadTypesStatement, bool>(server, server.WatchProbe(CancellationToken.None), connection: null, default, async, CancellationToken.None).ConfigureAwait(false);
            Interlocked.Increment(ref _reloads);
            Volatile.Write(ref _unloadable, []);
            reload.TrySetResult();
        }
        catch (Exception exception)
        {
            reload.TrySetException(exception);
        }
    }

    /// <summary>Npgsql's type reload on a connection of a single-host data source: that data source's pool, every session rented after it.</summary>
    private readonly struct ReloadTypesStatement : IServerStatement<bool>
    {
        public NpgsqlCommand? CreateCommand(NpgsqlConnection connection) => null;

        public async Task<bool> RunAsync(NpgsqlConnection connection, NpgsqlCommand? command)
        {
            await connection.ReloadTypesAsync(CancellationToken.None).ConfigureAwait(false);
            return true;
        }

        public bool Run(NpgsqlConnection connection, NpgsqlCommand? command)
        {
            connection.ReloadTypes();
            return true;
        }

        public CallHandover Succeeded(bool result, OperationWatch watch, NpgsqlConnection connection) => CallHandover.None;

        public void Failed(Exception exception, FailurePhase phase, NpgsqlConnection? connection)
        {
            // The read that asked for the reload runs again and meets whatever this was.
        }
    }
}

/// <summary>A replica read's result named a type its session does not know; its reader was disposed before any row reached EF.</summary>
/// <param name="detectedAt">When (<see cref="TimeProvider.GetTimestamp"/>): a reload begun after it covers the read.</param>
internal sealed class StaleTypesException(long detectedAt) : Exception("The replica's session does not know a type the result names; its types are reloaded and the read runs again.")
{
    /// <summary>When the read met the stale result.</summary>
    public long DetectedAt { get; } = detectedAt;
}
