namespace EfReplicaInterceptor.Topology;

/// <summary>
/// Turns a replica's probe answer into a <see cref="ReplicaHealth"/>: its lag in time (how long ago the oldest WAL the
/// replica has not replayed was first known to exist in the cluster, from <see cref="ClusterWalHistory"/>) and in bytes,
/// judged against the budgets. A standby's answer is also evidence for the others' while no primary answers. No I/O: the
/// monitor probes, this measures.
/// </summary>
internal sealed class ReplicaHealthMeter(ClusterWalHistory history, TimeSpan maxLag, long? maxLagBytes, TimeProvider timeProvider)
{
    public ReplicaHealth Measure(bool inRecovery, ulong replay, bool streaming)
    {
        var now = timeProvider.GetTimestamp();
        if (!inRecovery)
        {
            return new ReplicaHealth
            {
                Reachable = true,
                MeasuredAt = now,
                Problem = "not a standby: pg_is_in_recovery() is false (promoted, or the address of a primary)",
            };
        }

        TimeSpan? lag = null;
        long? lagBytes = null;
        if (history.TryMeasureStandby(now, replay, streaming, out var since, out var latest))
        {
            // Behind since the oldest position it lacks was first known to exist anywhere in the cluster (the primary's
            // samples across primary changes, or, while no primary answers, another standby's replay). A primary that was
            // never sampled and does not answer, with a standby that has no upstream either: measured against the other
            // standbys alone (the most advanced one is as fresh as the cluster can be).
            lagBytes = latest > replay ? (long)(latest - replay) : 0;
            lag = since is { } first ? timeProvider.GetElapsedTime(first, now) : TimeSpan.Zero;
        }

        string? problem = null;
        if (lag is null)
        {
            problem = "lag unknown: the primary has not been sampled yet";
        }
        else if (lag > maxLag)
        {
            problem = $"lag {lag.Value.TotalSeconds:0.###} s is over the budget of {maxLag.TotalSeconds:0.###} s ({lagBytes} bytes behind)";
        }
        else if (maxLagBytes is { } maxBytes && lagBytes > maxBytes)
        {
            problem = $"lag {lagBytes} bytes is over the budget of {maxBytes} bytes";
        }

        return new ReplicaHealth
        {
            Reachable = true,
            InRecovery = true,
            ReplayLsn = replay,
            Lag = lag,
            LagBytes = lagBytes,
            WalReceiverStreaming = streaming,
            MeasuredAt = now,
            IsLagging = problem is not null,
            Problem = problem,
        };
    }
}
