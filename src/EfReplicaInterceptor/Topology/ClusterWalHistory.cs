namespace EfReplicaInterceptor.Topology;

/// <summary>
/// What the cluster is known to have written, and since when: WAL positions with the time each was first known to exist
/// anywhere in the cluster. A replica's time lag is read from it: if its replayed position is below a position known to
/// exist at time T, it lacks something that was written by T, so it is behind by at least <c>now - T</c>. An idle cluster
/// adds no position, so a caught-up replica reads as 0 lag however long the primary has been idle (unlike
/// <c>now() - pg_last_xact_replay_timestamp()</c>). Thread-safe (the primary's loop adds and trims, the replicas' loops
/// measure).
/// </summary>
/// <remarks>
/// <para>
/// The evidence: the primary's WAL insert position (<c>pg_current_wal_insert_lsn()</c>) at every probe, whichever server
/// answers as the primary; and, while no primary answers (its probe fails, or it answers as a standby), each standby's
/// replayed position when it is first seen. A primary change does not restart the clock: the old primary's positions stay,
/// so a standby that lacks the dead primary's last writes (which the new primary has, having replayed them) is behind since
/// they were written; while no primary answers, a standby behind another one is behind since the other's position was first
/// seen.
/// </para>
/// <para>
/// Across timelines: a promoted standby continues the WAL from its own replay point (the fork) on a new timeline, so the
/// old primary's positions up to the fork are shared history and those past it are a dead branch, written nowhere now. When
/// the primary's timeline changes, every position above the new primary's first sample is dropped: the fork is at or below
/// that sample (the new timeline starts at the fork, the sample is taken after), so what is dropped is certainly dead, and
/// what may be kept of the dead branch lies below a position the new timeline has reached, so a standby on the new
/// timeline passes it as soon as it replays that first sample: the conservative error ends. A standby's position above the
/// primary's newest sample is not taken while a primary answers (it can only be on a dead branch, or a sample ahead by less
/// than one interval). A primary of another cluster (another system identifier) makes every position meaningless: the
/// history starts again.
/// </para>
/// <para>
/// The positions are kept in ascending order of both position and time (a position seen later than a higher one says
/// nothing more), so the oldest position a replica lacks is the first one above its replay.
/// </para>
/// </remarks>
internal sealed class ClusterWalHistory(int capacity = 4096)
{
    private readonly Lock _gate = new();
    private readonly List<(long Timestamp, ulong Lsn)> _points = [];
    private bool _primaryAnswers;
    private bool _primarySampled;
    private ulong _systemIdentifier;
    private int _timeline;

    /// <summary>The highest position known to exist (the primary's newest sample, or a standby's while no primary answers); null when none is.</summary>
    public ulong? Latest
    {
        get
        {
            lock (_gate)
            {
                return _points.Count == 0 ? null : _points[^1].Lsn;
            }
        }
    }

    /// <summary>The primary's last probe failed (it is down, or unreachable from here); a sample (<see cref="AddPrimarySample"/>) clears it.</summary>
    public bool PrimaryUnanswered { get; private set; }

    /// <summary>
    /// Records the primary's position at <paramref name="timestamp"/>, as the server that answered says (its system identifier
    /// and timeline; 0 when unknown). A new timeline drops the dead branch (every position above this one); another system
    /// identifier starts the history again.
    /// </summary>
    public void AddPrimarySample(long timestamp, ulong lsn, ulong systemIdentifier = 0, int timeline = 0)
    {
        lock (_gate)
        {
            PrimaryUnanswered = false;
            _primaryAnswers = true;
            _primarySampled = true;
            if (systemIdentifier != 0 && _systemIdentifier != 0 && systemIdentifier != _systemIdentifier)
            {
                _points.Clear(); // another cluster: its positions say nothing about this one's
                _timeline = 0;
            }
            else if (timeline != 0 && _timeline != 0 && timeline != _timeline)
            {
                DropAbove(lsn);
            }

            _systemIdentifier = systemIdentifier != 0 ? systemIdentifier : _systemIdentifier;
            _timeline = timeline != 0 ? timeline : _timeline;
            Insert(timestamp, lsn);
        }
    }

    /// <summary>
    /// No primary answers now: its probe failed (<paramref name="unanswered"/>) or the server answered as a standby. Until the
    /// next sample, the standbys' replayed positions count as evidence of what exists.
    /// </summary>
    public void PrimaryMissing(bool unanswered)
    {
        lock (_gate)
        {
            _primaryAnswers = false;
            PrimaryUnanswered |= unanswered;
        }
    }

    /// <summary>
    /// A standby's replayed position, seen at <paramref name="now"/>: recorded as evidence while no primary answers, then the
    /// standby's lag measured. False when its lag cannot be known: the primary was never sampled and either answers from
    /// elsewhere or the standby still streams from it (newer WAL may exist that no probe has seen).
    /// </summary>
    /// <param name="now">When the standby's answer arrived.</param>
    /// <param name="replay">Its <c>pg_last_wal_replay_lsn()</c>.</param>
    /// <param name="streaming">Its WAL receiver streams from an upstream.</param>
    /// <param name="firstUnreplayed">When the oldest position it lacks was first known to exist; null when it lacks none.</param>
    /// <param name="latest">The highest position known to exist.</param>
    public bool TryMeasureStandby(long now, ulong replay, bool streaming, out long? firstUnreplayed, out ulong latest)
    {
        lock (_gate)
        {
            if (!_primaryAnswers && replay != 0)
            {
                Insert(now, replay);
            }

            firstUnreplayed = null;
            latest = 0;
            if ((!_primarySampled && (!PrimaryUnanswered || streaming)) || _points.Count == 0)
            {
                return false;
            }

            latest = _points[^1].Lsn;
            firstUnreplayed = FirstUnreplayedCore(replay);
            return true;
        }
    }

    /// <summary>
    /// The time the oldest position the replica has not replayed was first known to exist, or <see langword="null"/> when
    /// the replica has replayed every known position. The replica's staleness is at least <c>now - that</c>, and at most
    /// that plus one sampling interval.
    /// </summary>
    public long? FirstUnreplayed(ulong replayLsn)
    {
        lock (_gate)
        {
            return FirstUnreplayedCore(replayLsn);
        }
    }

    /// <summary>
    /// Forgets positions every replica has replayed (<paramref name="minimumReplayLsn"/>: the lowest last-known replay of
    /// every listed replica, including those that do not answer now), except the newest one.
    /// </summary>
    public void Trim(ulong minimumReplayLsn)
    {
        lock (_gate)
        {
            var drop = 0;
            while (drop < _points.Count - 1 && _points[drop].Lsn <= minimumReplayLsn)
            {
                drop++;
            }

            _points.RemoveRange(0, drop);
        }
    }

    /// <summary>
    /// Forgets the positions every one of <paramref name="replicas"/> has replayed: a replica that does not answer now counts
    /// with the last position it was seen to replay (0, nothing forgotten, when never seen), so that it is measured against
    /// what it lacks when it answers again, however the history moved meanwhile; one that answers as a primary lacks nothing.
    /// </summary>
    public void TrimFor(IEnumerable<ReplicaEndpoint> replicas)
    {
        ulong? minimumReplay = null;
        foreach (var replica in replicas)
        {
            if (replica.Health is not { Reachable: true, InRecovery: false })
            {
                var replay = replica.LastSeenReplayLsn;
                minimumReplay = minimumReplay is null ? replay : Math.Min(minimumReplay.Value, replay);
            }
        }

        if (minimumReplay is { } minimum)
        {
            Trim(minimum);
        }
    }

    private long? FirstUnreplayedCore(ulong replayLsn)
    {
        var index = FirstAbove(replayLsn);
        return index < _points.Count ? _points[index].Timestamp : null;
    }

    /// <summary>The index of the first position above <paramref name="lsn"/> (binary search: positions ascend).</summary>
    private int FirstAbove(ulong lsn)
    {
        var (low, high) = (0, _points.Count);
        while (low < high)
        {
            var middle = (low + high) >>> 1;
            if (_points[middle].Lsn > lsn)
            {
                high = middle;
            }
            else
            {
                low = middle + 1;
            }
        }

        return low;
    }

    private void DropAbove(ulong lsn)
    {
        var index = FirstAbove(lsn);
        _points.RemoveRange(index, _points.Count - index);
    }

    /// <summary>
    /// Adds "<paramref name="lsn"/> existed at <paramref name="timestamp"/>", keeping both orders: nothing is added when a
    /// position at or above it was known no later; positions at or below it known no earlier are dropped.
    /// </summary>
    private void Insert(long timestamp, ulong lsn)
    {
        var index = lsn == 0 ? 0 : FirstAbove(lsn - 1); // the first position at or above lsn
        if (index < _points.Count && _points[index].Timestamp <= timestamp)
        {
            return; // an idle primary, or a standby behind a known position: the older evidence is the one that matters
        }

        if (index < _points.Count && _points[index].Lsn == lsn)
        {
            _points.RemoveAt(index);
        }

        var start = index;
        while (start > 0 && _points[start - 1].Timestamp >= timestamp)
        {
            start--;
        }

        _points.RemoveRange(start, index - start);
        _points.Insert(start, (timestamp, lsn));
        if (_points.Count > capacity)
        {
            _points.RemoveAt(0);
        }
    }
}
