using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Topology;
using Npgsql;

namespace EfReplicaInterceptor.Consistency;

/// <summary>
/// The round trips the consistency code makes to the cluster's servers, and nothing else: what it decides from their
/// answers stays with the caller, so that every decision can be tested without a server (a fake of this interface and a
/// <c>FakeTimeProvider</c>). Each call sends one statement under the server's read deadline; a failure is thrown as the
/// server's error (classified by the caller with <see cref="FailoverErrors"/>). Sync callers pass <c>async</c> false and
/// the call completes synchronously.
/// </summary>
internal interface IConsistencyRoundTrips
{
    /// <summary>
    /// The primary's WAL insert position (the end of its last record) and its cluster's system identifier: the position
    /// a scope's writes (and everything it may have seen) are at or before; with, from the same statement, the primary's
    /// view of its standbys' replay (<see cref="PrimaryCapture.Standbys"/>). Also how a restored token's cluster is checked
    /// while the monitor has not seen the primary yet. On <paramref name="onConnection"/> when given (EF's own connection,
    /// open and idle on the primary: a unit of work then holds one primary connection, not two), else on one of the pool's.
    /// </summary>
    ValueTask<PrimaryCapture> CapturePrimaryPositionAsync(NpgsqlConnection? onConnection, bool async, CancellationToken cancellationToken);

    /// <summary>
    /// What <paramref name="replica"/> has replayed (null when it answers as a primary: not in recovery) and when its
    /// postmaster started (which run of the server answered).
    /// </summary>
    ValueTask<(ulong? Lsn, long StartedAtTicks)> ReadReplayPositionAsync(ReplicaEndpoint replica, bool async, CancellationToken cancellationToken);
}

/// <summary>
/// The round trips on the real servers: the statements of <see cref="ServerQueries"/>, each on a connection of its own from
/// the server's data source, under the server's <see cref="OperationWatch"/>.
/// </summary>
internal sealed class ServerRoundTrips(WatchedServer primary, bool captureWritePosition) : IConsistencyRoundTrips
{
    public ValueTask<PrimaryCapture> CapturePrimaryPositionAsync(NpgsqlConnection? onConnection, bool async, CancellationToken cancellationToken)
        => ServerQueries.CapturePositionAsync(primary, onConnection, async, cancellationToken, captureWritePosition);

    public ValueTask<(ulong? Lsn, long StartedAtTicks)> ReadReplayPositionAsync(ReplicaEndpoint replica, bool async, CancellationToken cancellationToken)
        => ServerQueries.ReadReplayPositionAsync(replica.Server, async, cancellationToken);
}
