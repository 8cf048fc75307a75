using Npgsql;

namespace EfReplicaInterceptor.Topology;

/// <summary>
/// One read replica: its data source (built once) and whether reads may be sent to it right now.
/// A replica that failed for a command is left out for <c>HealthCheckInterval</c>, doubling up to 32 times that while it
/// keeps failing; when the pause is over exactly one command is let through to try it (half-open), and one success
/// re-admits it. Thread-safe; reads on the hot path are two volatile loads.
/// </summary>
internal sealed class ReplicaEndpoint : IAsyncDisposable
{
    private const int MaxBackoffExponent = 5;

    private readonly TimeProvider _timeProvider;
    private readonly long _baseBackoffTicks;
    private long _unavailableUntil;      // TimeProvider timestamp; 0 = available
    private int _consecutiveFailures;
    private volatile bool _admittedByMonitor;
    private volatile bool _probeRequested;
    private long _knownReplayLsn;
    private volatile ReplicaHealth _health = ReplicaHealth.Unknown;

    public ReplicaEndpoint(int index, string name, NpgsqlDataSource dataSource, TimeProvider timeProvider, TimeSpan baseBackoff)
    {
        Index = index;
        Name = name;
        LogSuffix = $" via replica '{name}'";
        DataSource = dataSource;
        _timeProvider = timeProvider;
        _baseBackoffTicks = (long)(baseBackoff.TotalSeconds * timeProvider.TimestampFrequency);
    }

    /// <summary>Position in the cluster's replica list (at most 64 replicas).</summary>
    public int Index { get; }

    /// <summary>The configured name (never the connection string).</summary>
    public string Name { get; }

    /// <summary>Text appended to routing log events, built once.</summary>
    public string LogSuffix { get; }

    public NpgsqlDataSource DataSource { get; }

    /// <summary>True when the replica is in rotation: the monitor admits it and it is not paused after failures.</summary>
    public bool IsAdmitted => _admittedByMonitor && Volatile.Read(ref _unavailableUntil) == 0;

    /// <summary>The monitor's verdict: reachable, a standby, and within the lag budget (with hysteresis).</summary>
    public bool AdmittedByMonitor
    {
        get => _admittedByMonitor;
        set => _admittedByMonitor = value;
    }

    /// <summary>Set when a command failed on the replica: the monitor probes it in its next round, whatever its backoff.</summary>
    public bool ProbeRequested
    {
        get => _probeRequested;
        set => _probeRequested = value;
    }

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
    public bool TryAcquire()
    {
        if (!_admittedByMonitor)
        {
            return false;
        }

        var until = Volatile.Read(ref _unavailableUntil);
        if (until == 0)
        {
            return true;
        }

        var now = _timeProvider.GetTimestamp();
        if (now < until)
        {
            return false;
        }

        // Half-open: claim the probe by pushing the pause forward; the winner tries the replica.
        var next = now + _baseBackoffTicks;
        return Interlocked.CompareExchange(ref _unavailableUntil, next, until) == until;
    }

    /// <summary>Records that a command failed on this replica for a reason that says the replica is unusable.</summary>
    /// <returns>True when this failure took the replica out of rotation (it was admitted before).</returns>
    public bool ReportFailure()
    {
        ProbeRequested = true;
        var failures = Interlocked.Increment(ref _consecutiveFailures);
        var exponent = Math.Min(failures - 1, MaxBackoffExponent);
        var until = _timeProvider.GetTimestamp() + (_baseBackoffTicks << exponent);
        var previous = Interlocked.Exchange(ref _unavailableUntil, until);
        return previous == 0;
    }

    /// <summary>Records a success.</summary>
    /// <returns>True when this success brought the replica back into rotation.</returns>
    public bool ReportSuccess()
    {
        if (Volatile.Read(ref _unavailableUntil) == 0 && Volatile.Read(ref _consecutiveFailures) == 0)
        {
            return false;
        }

        Volatile.Write(ref _consecutiveFailures, 0);
        return Interlocked.Exchange(ref _unavailableUntil, 0) != 0;
    }

    public ValueTask DisposeAsync() => DataSource.DisposeAsync();
}
