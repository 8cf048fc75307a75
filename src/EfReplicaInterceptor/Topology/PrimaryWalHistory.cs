namespace EfReplicaInterceptor.Topology;

/// <summary>
/// Recent samples of the primary's WAL insert position (<c>pg_current_wal_insert_lsn()</c>) with the time each was taken. A replica's
/// time lag is read from it: if its replayed position is below a sample taken at time T, it lacks something that was
/// committed by T. An idle primary does not move its position, so a caught-up replica reads as 0 lag however long the
/// primary has been idle (unlike <c>now() - pg_last_xact_replay_timestamp()</c>). Used by the monitor loop only
/// (single-threaded).
/// </summary>
internal sealed class PrimaryWalHistory(int capacity = 4096)
{
    private readonly (long Timestamp, ulong Lsn)[] _samples = new (long, ulong)[capacity];
    private int _start;
    private int _count;

    public ulong? Latest => _count == 0 ? null : _samples[(_start + _count - 1) % _samples.Length].Lsn;

    /// <summary>The primary's last probe failed (it is down, or unreachable from here); a sample (<see cref="Add"/>) clears it.</summary>
    public bool PrimaryUnanswered { get; set; }

    public void Add(long timestamp, ulong lsn)
    {
        PrimaryUnanswered = false;
        if (_count > 0)
        {
            var last = _samples[(_start + _count - 1) % _samples.Length];
            if (last.Lsn == lsn)
            {
                return; // the primary did not move: the older sample is the one that matters
            }
        }

        if (_count == _samples.Length)
        {
            _start = (_start + 1) % _samples.Length;
            _count--;
        }

        _samples[(_start + _count) % _samples.Length] = (timestamp, lsn);
        _count++;
    }

    /// <summary>
    /// The timestamp of the oldest sample whose position the replica has not replayed, or <see langword="null"/> when the
    /// replica has replayed everything sampled. The replica's staleness is at least <c>now - that</c>, and at most that
    /// plus one sampling interval.
    /// </summary>
    public long? FirstUnreplayed(ulong replayLsn)
    {
        for (var i = 0; i < _count; i++)
        {
            var sample = _samples[(_start + i) % _samples.Length];
            if (sample.Lsn > replayLsn)
            {
                return sample.Timestamp;
            }
        }

        return null;
    }

    /// <summary>Forgets samples every replica has replayed, except the newest one.</summary>
    public void Trim(ulong minimumReplayLsn)
    {
        while (_count > 1 && _samples[_start].Lsn <= minimumReplayLsn)
        {
            _start = (_start + 1) % _samples.Length;
            _count--;
        }
    }
}
