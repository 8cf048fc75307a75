using Npgsql;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Consistency;

/// <summary>
/// Where a read of a scope with a past goes when reads are monotonic (<see cref="EfReplicaOptions.MonotonicReads"/>): the
/// scope's own replica while it is in rotation in the same incarnation and has replayed the scope's floor (and its writes);
/// another replica only once the scope's earlier reads are bounded (a replica's replay position or the primary's insert
/// position sampled after them) and that replica is known to have replayed the bound; else the primary. Read-your-writes by
/// WAL position is resolved here too, so that one capture on the primary serves both. The lease's and the ambient scope's
/// pasts both apply. Holds no per-call state.
/// </summary>
internal sealed class ScopeReads(ReadYourWrites cluster, ReplicaSelector selector, TimeProvider timeProvider)
{
    /// <summary>
    /// The replica for a plain read (meeting <paramref name="requirement"/>) when it can be decided without a round trip:
    /// the scopes have no past (any replica, which becomes theirs), or their own replica qualifies. False when
    /// <see cref="ResolveAsync"/> must decide. With true and a null <paramref name="replica"/>, no replica can take it.
    /// <paramref name="hadPast"/>: the scopes had read before, so should the replica fail, the read must not go to just any
    /// other replica.
    /// </summary>
    public bool TryChoose(ReadYourWritesState? lease, ReadYourWritesState? ambient, in ReplicaRequirement requirement, out ReplicaEndpoint? replica, out bool lagging, out bool hadPast)
    {
        replica = null;
        lagging = false;
        hadPast = true;
        var (leasePast, ambientPast) = (lease?.History, ambient?.History);
        if (lease?.RestoredToken is not null || ambient?.RestoredToken is not null)
        {
            return false;
        }

        if (leasePast?.HasPast != true && ambientPast?.HasPast != true)
        {
            hadPast = false;
            replica = selector.Select(requirement, 0, out lagging);
            if (replica is not null)
            {
                leasePast?.Stick(replica, replica.Incarnation);
                ambientPast?.Stick(replica, replica.Incarnation);
            }

            return true;
        }

        if (!selector.AnyInRotation(out lagging))
        {
            return true; // the primary: no replica could take it whatever the scope saw
        }

        if (!BoundBySample(leasePast) || !BoundBySample(ambientPast) || (Own(leasePast) ?? Own(ambientPast)) is not { } own
            || HasOtherReplica(leasePast, own) || HasOtherReplica(ambientPast, own)
            || !selector.Accepts(own, requirement.AtLeast(Floor(leasePast, ambientPast))) || !own.TryAcquire())
        {
            return false;
        }

        leasePast?.Stick(own, own.Incarnation);
        ambientPast?.Stick(own, own.Incarnation);
        replica = own;
        return true;
    }

    /// <summary>
    /// Resolves a read of scopes with a past, or after a write (<paramref name="readYourWrites"/>: the scopes' writes must
    /// be seen too). Sync callers pass <paramref name="async"/> false and every step runs synchronously. A capture on the
    /// primary runs on <paramref name="primaryConnection"/> when the command's own connection is open on it (see
    /// <see cref="ReadYourWrites.CapturePrimaryAsync"/>).
    /// </summary>
    public async ValueTask<ReadYourWritesChoice> ResolveAsync(
        ReadYourWritesState? lease, ReadYourWritesState? ambient, ReplicaRequirement requirement, bool readYourWrites, NpgsqlConnection? primaryConnection, bool async, CancellationToken cancellationToken)
    {
        var (leasePast, ambientPast) = (lease?.History, ambient?.History);
        try
        {
            if (!await cluster.CheckRestoredTokenAsync(lease, primaryConnection, async, cancellationToken).ConfigureAwait(false)
                | !await cluster.CheckRestoredTokenAsync(ambient, primaryConnection, async, cancellationToken).ConfigureAwait(false))
            {
                return new(null, RoutingReason.AfterWrite, false);
            }

            var writesPending = readYourWrites && (lease?.IsPending == true || ambient?.IsPending == true);
            if (!writesPending && !selector.AnyInRotation(out var noneFresh))
            {
                // No replica could take it whatever the scope saw: the primary, without a round trip for a bound.
                return new(null, noneFresh ? RoutingReason.ReplicaLagging : RoutingReason.ReplicaUnavailable, false);
            }

            if (writesPending || !BoundBySample(leasePast) || !BoundBySample(ambientPast))
            {
                await CaptureAsync(lease, ambient, writesPending, primaryConnection, async, cancellationToken).ConfigureAwait(false);
            }

            cluster.VerifyRestoredPosition(lease);
            cluster.VerifyRestoredPosition(ambient);
            var required = readYourWrites ? Math.Max(lease?.RequiredLsn ?? 0, ambient?.RequiredLsn ?? 0) : 0;

            // The scope's own replica first: it needs no bound of the reads it served.
            var own = Own(leasePast) ?? Own(ambientPast);
            if (own is not null)
            {
                await BoundReadsAsync(lease, ambient, own, primaryConnection, async, cancellationToken).ConfigureAwait(false);
                var onOwn = requirement.AtLeast(Math.Max(required, Floor(leasePast, ambientPast)));
                if (selector.Accepts(own, onOwn)
                    || (onOwn.Kind == ReplicaRequirementKind.CaughtUp && await cluster.CheckReplayAsync(own, async, cancellationToken).ConfigureAwait(false) && selector.Accepts(own, onOwn)))
                {
                    if (own.TryAcquire())
                    {
                        return Chosen(leasePast, ambientPast, own);
                    }
                }
            }

            // Elsewhere: every earlier read bounded first, then a replica that has replayed the bound.
            await BoundReadsAsync(lease, ambient, null, primaryConnection, async, cancellationToken).ConfigureAwait(false);
            var floor = Floor(leasePast, ambientPast);
            var need = requirement.AtLeast(Math.Max(required, floor));
            var other = selector.Select(need, 0, out var lagging);
            if (other is null && need.Kind == ReplicaRequirementKind.CaughtUp)
            {
                other = await cluster.WaitForReplicaAsync(need, required > 0 ? cluster.MaxWait : TimeSpan.Zero, async, cancellationToken).ConfigureAwait(false);
            }

            if (other is not null)
            {
                return Chosen(leasePast, ambientPast, other);
            }

            // Replicas in rotation that have not replayed what the scope saw are lagging behind it.
            var reason = required > 0 ? RoutingReason.AfterWrite
                : lagging || (floor > 0 && selector.AnyInRotation(out _)) ? RoutingReason.ReplicaLagging
                : RoutingReason.ReplicaUnavailable;
            return new(null, reason, false);
        }
        catch (Exception exception) when (FailoverErrors.IsFailoverOfOwnStatement(exception) && !cancellationToken.IsCancellationRequested)
        {
            // A position cannot be obtained from the primary: the read goes there (nothing is lost, it is the newest).
            return new(null, RoutingReason.AfterWrite, false);
        }
    }

    /// <summary>
    /// The position for a token: at or beyond what the scope wrote and what its reads may have seen (their bound taken now,
    /// from its own replica's latest sample when it is recent enough, else one capture on the primary).
    /// </summary>
    public async ValueTask<ulong> SeenPositionAsync(ReadYourWritesState state, CancellationToken cancellationToken)
    {
        if (state.IsPending || state.History.Unbounded)
        {
            await CaptureAsync(state, null, state.IsPending, primaryConnection: null, async: true, cancellationToken).ConfigureAwait(false);
        }

        await BoundReadsAsync(state, null, null, primaryConnection: null, async: true, cancellationToken).ConfigureAwait(false);
        return Math.Max(state.RequiredLsn, state.History.Floor);
    }

    /// <summary>
    /// Puts the reads served by the scopes' own replicas (other than <paramref name="keep"/>) under their floors: the
    /// replica's latest sample when it was sent after those reads, else its replay position asked now (one small query on
    /// the replica, while it is in rotation in the same run), else one capture on the primary for all.
    /// </summary>
    private async ValueTask BoundReadsAsync(ReadYourWritesState? lease, ReadYourWritesState? ambient, ReplicaEndpoint? keep, NpgsqlConnection? primaryConnection, bool async, CancellationToken cancellationToken)
    {
        var leaseUnbounded = await NeedsPrimaryBoundAsync(lease?.History, keep, async, cancellationToken).ConfigureAwait(false);
        var ambientUnbounded = await NeedsPrimaryBoundAsync(ambient?.History, keep, async, cancellationToken).ConfigureAwait(false);
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
        => past is not { Unbounded: true } || (cluster.NewestPrimaryBound is { } bound && past.TryBoundBy(bound.Lsn, bound.SentAt));

    private async ValueTask<bool> NeedsPrimaryBoundAsync(ReadHistory? past, ReplicaEndpoint? keep, bool async, CancellationToken cancellationToken)
    {
        if (!NeedsPrimaryBound(past, keep))
        {
            return false;
        }

        var (replica, incarnation) = past!.Sticky;
        return replica is null || replica.Incarnation != incarnation || !replica.IsAdmitted
            || !await cluster.CheckReplayAsync(replica, async, cancellationToken).ConfigureAwait(false)
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

        if (cluster.NewestPrimaryBound is { } primary && primary.SentAt >= servedUntil)
        {
            past.Raise(primary.Lsn);
            return false;
        }

        return true;
    }

    /// <summary>One capture on the primary: the scopes' pending writes (when <paramref name="writes"/>) and their unbounded reads.</summary>
    private async ValueTask CaptureAsync(ReadYourWritesState? lease, ReadYourWritesState? ambient, bool writes, NpgsqlConnection? primaryConnection, bool async, CancellationToken cancellationToken)
    {
        var (leaseWrites, ambientWrites) = (lease?.Generation ?? 0, ambient?.Generation ?? 0);
        var (leaseReads, ambientReads) = (lease?.History.UnboundedGeneration ?? 0, ambient?.History.UnboundedGeneration ?? 0);
        var sentAt = timeProvider.GetTimestamp();
        var (lsn, systemIdentifier) = await cluster.CapturePrimaryAsync(primaryConnection, async, cancellationToken).ConfigureAwait(false);
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

        lease?.History.BoundedByPrimary(lsn, leaseReads, sentAt);
        ambient?.History.BoundedByPrimary(lsn, ambientReads, sentAt);
    }

    private static ReadYourWritesChoice Chosen(ReadHistory? leasePast, ReadHistory? ambientPast, ReplicaEndpoint replica)
    {
        leasePast?.Stick(replica, replica.Incarnation);
        ambientPast?.Stick(replica, replica.Incarnation);
        return new(replica, RoutingReason.Read, true);
    }

    /// <summary>The scope's own replica while it runs in the incarnation the scope chose it in.</summary>
    private static ReplicaEndpoint? Own(ReadHistory? past)
        => past?.Sticky is ({ } replica, var incarnation) && replica.Incarnation == incarnation ? replica : null;

    private static bool HasOtherReplica(ReadHistory? past, ReplicaEndpoint own)
        => past?.Sticky is ({ } replica, var incarnation) && (!ReferenceEquals(replica, own) || incarnation != own.Incarnation);

    private static ulong Floor(ReadHistory? leasePast, ReadHistory? ambientPast)
        => Math.Max(leasePast?.Floor ?? 0, ambientPast?.Floor ?? 0);
}
