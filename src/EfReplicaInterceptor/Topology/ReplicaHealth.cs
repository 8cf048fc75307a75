namespace EfReplicaInterceptor.Topology;

/// <summary>What the monitor last learned about one replica. Immutable; replaced as a whole after every probe.</summary>
internal sealed class ReplicaHealth
{
    public static readonly ReplicaHealth Unknown = new() { Problem = "not probed yet" };

    /// <summary>The probe reached the server.</summary>
    public bool Reachable { get; init; }

    /// <summary><c>pg_is_in_recovery()</c>: true for a standby.</summary>
    public bool InRecovery { get; init; }

    /// <summary>Bytes of WAL the primary had (at the last primary sample) that the replica has not replayed; null when unknown.</summary>
    public long? LagBytes { get; init; }

    /// <summary>How far behind the replica's data is; null when unknown (for example the primary could not be sampled).</summary>
    public TimeSpan? Lag { get; init; }

    /// <summary>The replica's WAL receiver is streaming from its upstream.</summary>
    public bool WalReceiverStreaming { get; init; }

    /// <summary><c>pg_last_wal_replay_lsn()</c> as a number.</summary>
    public ulong ReplayLsn { get; init; }

    /// <summary>When this was measured (<see cref="TimeProvider.GetTimestamp"/>).</summary>
    public long MeasuredAt { get; init; }

    /// <summary>The replica answers as a standby but is behind its lag budget (or its lag cannot be measured yet).</summary>
    public bool IsLagging { get; init; }

    /// <summary>Why the replica cannot serve reads, or null when it can.</summary>
    public string? Problem { get; init; }
}
