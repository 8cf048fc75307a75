using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Consistency;

/// <summary>Finding a replica that has replayed a position: the monitor's knowledge, else asking the replicas, for a bounded time.</summary>
internal sealed partial class ConsistencyResolver
{
    /// <summary>
    /// A replica that meets <paramref name="requirement"/> (a caught-up one): known to, else asked directly, again every few
    /// milliseconds for up to <paramref name="maxWait"/>; null when none did.
    /// </summary>
    private async ValueTask<ReplicaEndpoint?> WaitForReplicaAsync(ReplicaRequirement requirement, TimeSpan maxWait, bool async, CancellationToken cancellationToken)
    {
        var deadline = _timeProvider.GetTimestamp() + (long)(maxWait.TotalSeconds * _timeProvider.TimestampFrequency);
        while (true)
        {
            var caughtUp = _selector.Select(requirement, 0, out _)
                ?? await CheckReplayDirectlyAsync(requirement, async, cancellationToken).ConfigureAwait(false);
            if (caughtUp is not null || _timeProvider.GetTimestamp() >= deadline)
            {
                return caughtUp;
            }

            if (async)
            {
                await Task.Delay(PollInterval, _timeProvider, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                Task.Delay(PollInterval, _timeProvider, cancellationToken).GetAwaiter().GetResult(); // the cluster's clock, not Thread.Sleep
            }
        }
    }

    /// <summary>Asks each replica in rotation for its replayed position (one small query each) until one has the position.</summary>
    private async ValueTask<ReplicaEndpoint?> CheckReplayDirectlyAsync(ReplicaRequirement requirement, bool async, CancellationToken cancellationToken)
    {
        foreach (var replica in _selector.Replicas)
        {
            if (replica.IsAdmitted
                && await CheckReplayAsync(replica, async, cancellationToken).ConfigureAwait(false)
                && replica.KnownReplayLsn >= requirement.Lsn
                && replica.TryAcquire())
            {
                return replica;
            }
        }

        return null;
    }

    /// <summary>
    /// Asks <paramref name="replica"/> for its replayed position (one small query) and records it; false when the check
    /// failed (a failure that says something about the replica takes it out of rotation).
    /// </summary>
    public async ValueTask<bool> CheckReplayAsync(ReplicaEndpoint replica, bool async, CancellationToken cancellationToken)
    {
        if (replica.IsRetired)
        {
            return false; // no longer one of the cluster's replicas (a scope's own replica that left the topology)
        }

        try
        {
            _metrics.ReplayChecked(_cluster);
            var sentAt = _timeProvider.GetTimestamp();
            var (replayed, startedAt) = await _roundTrips.ReadReplayPositionAsync(replica, async, cancellationToken).ConfigureAwait(false);
            if (replayed is { } lsn)
            {
                replica.ObserveReplay(lsn, startedAt, sentAt);
            }

            return replayed is not null;
        }
        catch (Exception exception) when (FailoverErrors.Classify(exception, FailurePhase.Opening, onStandby: true) is not ServerErrorKind.None and var kind && !cancellationToken.IsCancellationRequested)
        {
            // Only a failure that says something about the replica takes it out (not an expired idle session, say).
            if (FailurePolicy.For(kind).ReplicaLeavesRotation && replica.ReportFailure())
            {
                Log.ReplicaLeftRotation(_topologyLogger, replica.Name, _cluster, "a replay position check failed on it");
            }

            return false;
        }
    }
}
