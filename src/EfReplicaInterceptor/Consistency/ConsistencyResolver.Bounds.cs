using EfReplicaInterceptor.Topology;
using Npgsql;

namespace EfReplicaInterceptor.Consistency;

/// <summary>What a scope's commands may have seen, and its bounds: where they ran, captures on the primary, replica samples.</summary>
internal sealed partial class ConsistencyResolver
{
    /// <summary>
    /// A read of the lease's scope (and the ambient one) finished on <paramref name="replica"/>, or on the primary (null):
    /// what the scopes may have seen, for monotonic reads.
    /// </summary>
    public void ReadServed(ScopeState? lease, ReplicaEndpoint? replica)
    {
        if (!MonotonicReads)
        {
            return;
        }

        var now = _timeProvider.GetTimestamp();
        var incarnation = replica?.Incarnation ?? 0;
        lease?.Reads.Served(replica, incarnation, now);
        EfReplicaScope.CurrentConsistency?.StateFor(this).Reads.Served(replica, incarnation, now);
    }

    /// <summary>
    /// EF runs a command of the lease's scope (and the ambient one) on the primary itself (a read in a transaction, on a
    /// pinned session, a locking read): the scopes may see the primary's data, which a later read elsewhere must not go
    /// behind. Only a capture taken after it can bound it.
    /// </summary>
    public void RunsOnPrimary(ScopeState? lease)
    {
        if (!MonotonicReads)
        {
            return;
        }

        lease?.Reads.StartedOnPrimary();
        EfReplicaScope.CurrentConsistency?.StateFor(this).Reads.StartedOnPrimary();
    }

    /// <summary>
    /// The position for a token: at or beyond what the scope wrote and what its reads may have seen (their bound taken now,
    /// from its own replica's latest sample when it is recent enough, else one capture on the primary).
    /// </summary>
    public async ValueTask<ulong> SeenPositionAsync(ScopeState state, CancellationToken cancellationToken)
    {
        if (state.IsPending || Past(state)?.Unbounded == true)
        {
            await CaptureAsync(state, null, state.IsPending, primaryConnection: null, async: true, cancellationToken).ConfigureAwait(false);
        }

        await BoundReadsAsync(state, null, null, primaryConnection: null, async: true, cancellationToken).ConfigureAwait(false);
        return Math.Max(state.RequiredLsn, Past(state)?.Floor ?? 0);
    }

    /// <summary>
    /// Puts the reads served by the scopes' own replicas (other than <paramref name="keep"/>) under their floors: the
    /// replica's latest sample when it was sent after those reads, else its replay position asked now (one small query on
    /// the replica, while it is in rotation in the same run), else one capture on the primary for all.
    /// </summary>
    private async ValueTask BoundReadsAsync(ScopeState? lease, ScopeState? ambient, ReplicaEndpoint? keep, NpgsqlConnection? primaryConnection, bool async, CancellationToken cancellationToken)
    {
        var leaseUnbounded = await NeedsPrimaryBoundAsync(Past(lease), keep, async, cancellationToken).ConfigureAwait(false);
        var ambientUnbounded = await NeedsPrimaryBoundAsync(Past(ambient), keep, async, cancellationToken).ConfigureAwait(false);
        if (leaseUnbounded || ambientUnbounded)
        {
            await CaptureAsync(lease, ambient, writes: false, primaryConnection, async, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Bounds the unbounded commands of <paramref name="past"/> by the primary's position sampled last (by the monitor or any
    /// capture) when its query was sent after they finished: no capture of the scope's own, and the primary need not answer
    /// now. False when a capture is still needed.
    /// </summary>
    private bool BoundBySample(ReadHistory? past)
        => past is not { Unbounded: true } || (_primaryPosition.NewestSent is { } bound && past.TryBoundBy(bound.Lsn, bound.SentAt));

    private async ValueTask<bool> NeedsPrimaryBoundAsync(ReadHistory? past, ReplicaEndpoint? keep, bool async, CancellationToken cancellationToken)
    {
        if (!NeedsPrimaryBound(past, keep))
        {
            return false;
        }

        var (replica, incarnation) = past!.Sticky;
        return replica is null || replica.Incarnation != incarnation || !replica.IsAdmitted
            || !await CheckReplayAsync(replica, async, cancellationToken).ConfigureAwait(false)
            || NeedsPrimaryBound(past, keep);
    }

    /// <summary>
    /// Raises the floor of <paramref name="past"/> over its own replica's reads when a sample bounds them (the replica's own,
    /// else the primary's sampled after them); true when only a capture on the primary can.
    /// </summary>
    private bool NeedsPrimaryBound(ReadHistory? past, ReplicaEndpoint? keep)
    {
        if (past is null)
        {
            return false;
        }

        var (replica, incarnation) = past.Sticky;
        var servedUntil = past.LastServedAt;
        if (replica is null || servedUntil == 0 || (ReferenceEquals(replica, keep) && replica.Incarnation == incarnation))
        {
            return false;
        }

        if (replica.ReplayBound(incarnation, servedUntil) is { } bound)
        {
            past.Raise(bound);
            return false;
        }

        if (_primaryPosition.NewestSent is { } primary && primary.SentAt >= servedUntil)
        {
            past.Raise(primary.Lsn);
            return false;
        }

        return true;
    }

    /// <summary>One capture on the primary: the scopes' pending writes (when <paramref name="writes"/>) and their unbounded reads.</summary>
    private async ValueTask CaptureAsync(ScopeState? lease, ScopeState? ambient, bool writes, NpgsqlConnection? primaryConnection, bool async, CancellationToken cancellationToken)
    {
        var (leasePast, ambientPast) = (Past(lease), Past(ambient));
        var (leaseWrites, ambientWrites) = (lease?.Generation ?? 0, ambient?.Generation ?? 0);
        var (leaseReads, ambientReads) = (leasePast?.UnboundedGeneration ?? 0, ambientPast?.UnboundedGeneration ?? 0);
        var sentAt = _timeProvider.GetTimestamp();
        var (lsn, systemIdentifier) = await CapturePrimaryAsync(primaryConnection, async, cancellationToken).ConfigureAwait(false);
        if (writes)
        {
            if (lease?.IsPending == true)
            {
                lease.Satisfy(lsn, systemIdentifier, leaseWrites);
            }

            if (ambient?.IsPending == true)
            {
                ambient.Satisfy(lsn, systemIdentifier, ambientWrites);
            }
        }

        leasePast?.BoundedByPrimary(lsn, leaseReads, sentAt);
        ambientPast?.BoundedByPrimary(lsn, ambientReads, sentAt);
    }

    /// <summary>
    /// One capture of the primary's position (counted, and recorded as the cluster's latest primary sample), on
    /// <paramref name="primaryConnection"/> when given (the command's own connection, open and idle on the primary: with the
    /// interceptors alone EF has opened it for every command, and a second primary connection per unit of work would double
    /// the primary's client connections), else on one of the pool's. The standbys' replay the primary showed in the same
    /// statement is fed to the replicas it belongs to (<see cref="StandbyReplayReports"/>): a replica that has replayed the
    /// position is then known to have, and the read after a write takes it without asking it (no replay check).
    /// </summary>
    private async ValueTask<(ulong Lsn, ulong SystemIdentifier)> CapturePrimaryAsync(NpgsqlConnection? primaryConnection, bool async, CancellationToken cancellationToken)
    {
        _metrics.PositionCaptured(_cluster);
        var sentAt = _timeProvider.GetTimestamp();
        var capture = await _roundTrips.CapturePrimaryPositionAsync(primaryConnection, async, cancellationToken).ConfigureAwait(false);
        _primaryPosition.Record(_timeProvider.GetTimestamp(), capture.Lsn, capture.SystemIdentifier, _captureWritePosition ? 0 : sentAt);
        if (capture.Standbys is { } standbys)
        {
            _metrics.StandbyReplayReported(_cluster, StandbyReplayReports.Feed(standbys, _selector.Replicas, sentAt, capture.Address));
        }

        return (capture.Lsn, capture.SystemIdentifier);
    }
}
