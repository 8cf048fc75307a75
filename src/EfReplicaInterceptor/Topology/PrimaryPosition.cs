namespace EfReplicaInterceptor.Topology;

/// <summary>
/// The newest WAL position seen on the primary (by the monitor's probes and by read-your-writes captures) and the
/// cluster's system identifier. Written by both, read by the router; the position is replaced as a whole.
/// </summary>
internal sealed class PrimaryPosition
{
    private volatile Sample? _latest;
    private long _systemIdentifier;

    public Sample? Latest => _latest;

    /// <summary>The primary's <c>system_identifier</c> (0 until first seen). Standbys share it; another cluster does not.</summary>
    public ulong SystemIdentifier => (ulong)Interlocked.Read(ref _systemIdentifier);

    public void Record(long timestamp, ulong lsn, ulong systemIdentifier)
    {
        if (systemIdentifier != 0)
        {
            Interlocked.Exchange(ref _systemIdentifier, (long)systemIdentifier);
        }

        var current = _latest;
        if (current is null || current.Timestamp < timestamp)
        {
            _latest = new Sample(timestamp, lsn);
        }
    }

    internal sealed record Sample(long Timestamp, ulong Lsn);
}
