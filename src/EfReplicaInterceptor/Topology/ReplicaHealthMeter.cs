namespace EfReplicaInterceptor.Topology;

/// <summary>
/// Turns a replica's probe answer into a <see cref="ReplicaHealth"/>: its lag in time (how long ago the primary wrote the
/// oldest WAL the replica has not replayed, from the primary's sampled history) and in bytes, judged against the budgets.
/// No I/O: the monitor probes, this measures.
/// </summary>
internal sealed class ReplicaHealthMeter(PrimaryWalHistory history, TimeSpan maxLag, long? maxLagBytes, TimeProvider timeProvider)
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
        if (history.Latest is { } primaryLsn)
        {
            lagBytes = primaryLsn > replay ? (long)(primaryLsn - replay) : 0;
            lag = history.FirstUnreplayed(replay) is { } since ? timeProvider.GetElapsedTime(since, now) : TimeSpan.Zero;
        }
        else if (history.PrimaryUnanswered && !streaming)
        {
            // The primary was never sampled and does not answer, and the standby has no upstream either: nothing newer than
            // what it replayed can be reached anywhere, so it is as fresh as the cluster can be (as with a primary sampled
            // before it went down). A standby still streaming from a primary we cannot see stays out: its lag is unknown.
            lagBytes = 0;
            lag = TimeSpan.Zero;
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
