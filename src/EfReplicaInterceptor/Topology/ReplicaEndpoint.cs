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

    /// <summary>Number of failures in a row since the last success.</summary>
    public int ConsecutiveFailures => Volatile.Read(ref _consecutiveFailures);

    /// <summary>True when the replica is not paused after failures (it may still be probed by one caller).</summary>
    public bool IsAdmitted => Volatile.Read(ref _unavailableUntil) == 0;

    /// <summary>
    /// True when a read may be sent here now. When the pause after a failure is over, only the first caller gets
    /// <see langword="true"/> (it probes); the others keep seeing it unavailable until that probe reports.
    /// </summary>
    public bool TryAcquire()
    {
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
