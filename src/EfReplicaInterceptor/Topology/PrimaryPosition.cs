namespace EfReplicaInterceptor.Topology;

/// <summary>
/// The newest WAL position seen on the primary (by the monitor's probes and by read-your-writes captures) and the
/// cluster's system identifier. Written by both, read by the router; the position is replaced as a whole.
/// </summary>
internal sealed class PrimaryPosition
{
    private volatile Sample? _latest;
    private volatile Bound? _newestSent;
    private long _systemIdentifier;

    public Sample? Latest => _latest;

    /// <summary>
    /// The sample whose query was sent last (<see cref="Bound.SentAt"/>, a timestamp taken before the query left): its position
    /// is at or beyond everything a read that finished before then may have seen on the primary or on its standbys (a
    /// standby's data is a prefix of the primary's WAL, and the primary's insert position only moves forward).
    /// </summary>
    public Bound? NewestSent => _newestSent;

    /// <summary>The primary's <c>system_identifier</c> (0 until first seen). Standbys share it; another cluster does not.</summary>
    public ulong SystemIdentifier => (ulong)Interlocked.Read(ref _systemIdentifier);

    /// <param name="timestamp">When the position was received.</param>
    /// <param name="lsn">The primary's WAL insert position.</param>
    /// <param name="systemIdentifier">The primary's system identifier (0: not asked).</param>
    /// <param name="sentAt">A timestamp taken before the query was sent (at or before the moment the server read the position).</param>
    public void Record(long timestamp, ulong lsn, ulong systemIdentifier, long sentAt)
    {
        var sent = _newestSent;
        if (sent is null || sent.SentAt < sentAt)
        {
            _newestSent = new Bound(sentAt, lsn); // a lost race keeps an older bound: still a bound
        }

        if (systemIdentifier != 0 && Interlocked.Exchange(ref _systemIdentifier, (long)systemIdentifier) != (long)systemIdentifier)
        {
            KnownSystems.Add(systemIdentifier);
        }

        var current = _latest;
        if (current is null || current.Timestamp < timestamp)
        {
            _latest = new Sample(timestamp, lsn);
        }
    }

    internal sealed record Sample(long Timestamp, ulong Lsn);

    internal sealed record Bound(long SentAt, ulong Lsn);
}
