using EfReplicaInterceptor.Failover;
using Npgsql;

namespace EfReplicaInterceptor.Topology;

/// <summary>
/// One read replica: its data source (built once), what the monitor last measured, and whether reads may be sent to it
/// right now. Whether it is in rotation is decided by its <see cref="Availability"/> (the monitor's verdict with
/// hysteresis, the pause after failed reads, the half-open trial); the members here delegate to it. Thread-safe.
/// </summary>
internal sealed class ReplicaEndpoint : IAsyncDisposable
{
    private readonly TimeProvider _timeProvider;
    private long _knownReplayLsn;
    private volatile ReplicaHealth _health = ReplicaHealth.Unknown;

    public ReplicaEndpoint(int index, string name, NpgsqlDataSource dataSource, TimeProvider timeProvider, TimeSpan baseBackoff, ServerDeadlines? deadlines = null)
    {
        deadlines ??= new ServerDeadlines(TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(2), timeProvider);
        Server = new WatchedServer($"replica '{name}'", dataSource, new ServerLiveness(timeProvider), deadlines);
        Index = index;
        Name = name;
        LogSuffix = $" via replica '{name}'";
        DataSource = dataSource;
        _timeProvider = timeProvider;
        Availability = new ReplicaAvailability(timeProvider, baseBackoff);
    }

    /// <summary>Position in the cluster's replica list (at most 64 replicas).</summary>
    public int Index { get; }

    /// <summary>The configured name (never the connection string).</summary>
    public string Name { get; }

    /// <summary>Text appended to routing log events, built once.</summary>
    public string LogSuffix { get; }

    public NpgsqlDataSource DataSource { get; }

    /// <summary>The replica as the library's own operations see it: its data source, signs of life and deadlines.</summary>
    public WatchedServer Server { get; }

    /// <summary>The replica's availability state: the one place that decides whether it is in rotation.</summary>
    public ReplicaAvailability Availability { get; }

    /// <summary>True when the replica is in rotation: the monitor admits it and it is not paused after failures.</summary>
    public bool IsAdmitted => Availability.IsInRotation;

    /// <summary>Set when a command failed on the replica: the monitor probes it in its next round, whatever its backoff.</summary>
    public bool ProbeRequested => Availability.ProbeRequested;

    /// <summary>The highest WAL position this replica is known to have replayed (from probes and direct checks).</summary>
    public ulong KnownReplayLsn => (ulong)Interlocked.Read(ref _knownReplayLsn);

    /// <summary>Records a replayed position seen on the replica; positions only move forward.</summary>
    public void ObserveReplay(ulong lsn)
    {
        var seen = Interlocked.Read(ref _knownReplayLsn);
        while ((ulong)seen < lsn)
        {
            var previous = Interlocked.CompareExchange(ref _knownReplayLsn, (long)lsn, seen);
            if (previous == seen)
            {
                return;
            }

            seen = previous;
        }
    }

    /// <summary>The monitor's latest measurement.</summary>
    public ReplicaHealth Health
    {
        get => _health;
        set => _health = value;
    }

    /// <summary>
    /// The replica's staleness now, from the latest measurement: the measured lag, plus the time since the measurement
    /// when the replica was behind then (it may have fallen further behind since). Null when unknown.
    /// </summary>
    public TimeSpan? CurrentLag(long now)
    {
        var health = _health;
        if (health.Lag is not { } lag)
        {
            return null;
        }

        return lag == TimeSpan.Zero ? lag : lag + _timeProvider.GetElapsedTime(health.MeasuredAt, now);
    }

    /// <summary>
    /// True when a read may be sent here now. When the pause after a failure is over, only the first caller gets
    /// <see langword="true"/> (it probes); the others keep seeing it unavailable until that probe reports.
    /// </summary>
    public bool TryAcquire() => Availability.TryAcquire();

    /// <summary>Records that a command failed on this replica for a reason that says the replica is unusable.</summary>
    /// <returns>True when this failure took the replica out of rotation (it was in rotation before).</returns>
    public bool ReportFailure() => Availability.ReportFailure() == AvailabilityChange.Left;

    /// <summary>Records a success.</summary>
    /// <returns>True when this success brought the replica back into rotation.</returns>
    public bool ReportSuccess() => Availability.ReportSuccess() == AvailabilityChange.Rejoined;

    public ValueTask DisposeAsync() => DataSource.DisposeAsync();
}
