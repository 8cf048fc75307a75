using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Consistency;

/// <summary>
/// What one consistency scope's reads may have seen, for monotonic reads (<see cref="EfReplicaOptions.MonotonicReads"/>):
/// <list type="bullet">
/// <item>the scope's own replica (<see cref="Sticky"/>, in one incarnation): while it keeps reading there, its reads cannot
/// go back in time, since a running standby's replay only moves forward;</item>
/// <item>the <see cref="Floor"/>: a WAL position at or beyond everything every other earlier read may have seen (bounds
/// taken after those reads: a replica's replay position or the primary's insert position);</item>
/// <item>whether a read (or any command) ran where the floor does not cover it yet (<see cref="Unbounded"/>: on the
/// primary, or on a replica other than the scope's own), and when the last read on the scope's own replica finished.</item>
/// </list>
/// A read may go to the scope's own replica when it is known to have replayed the floor, and to any other replica only once
/// the reads on the scope's own replica and the unbounded ones are under the floor and that replica has replayed it; the
/// primary always qualifies. Shared by every context in an ambient scope, so every member takes a lock.
/// </summary>
internal sealed class ReadHistory
{
    private readonly Lock _gate = new();
    private ReplicaEndpoint? _sticky;
    private long _stickyIncarnation;
    private long _lastServedAt;
    private ulong _floor;
    private bool _unbounded;
    private long _unboundedGeneration;

    /// <summary>When the last unbounded command finished (a timestamp); <see cref="long.MaxValue"/>: one whose end is not known.</summary>
    private long _unboundedUntil;
    private bool _hasRead;

    /// <summary>The replica the scope last read on since the last Long Fork check, and when that read finished.</summary>
    private ReplicaEndpoint? _standbyRead;
    private long _standbyReadAt;

    /// <summary>The scope was restored from a token whose reads may have run on a standby, not checked since.</summary>
    private bool _tokenRead;

    /// <summary>
    /// <see cref="_standbyRead"/> is set or <see cref="_tokenRead"/> is true: written under the lock, read without it, so that
    /// a command for the primary of a scope with nothing to check takes no lock.
    /// </summary>
    private volatile bool _longForkDue;

    /// <summary>A command of the scope ran in this cluster (since its start or reset): a token carries what it may have seen.</summary>
    public bool HasRead
    {
        get
        {
            lock (_gate)
            {
                return _hasRead;
            }
        }
    }

    /// <summary>The scope has read (or restored a token): its next read has a past to respect.</summary>
    public bool HasPast
    {
        get
        {
            lock (_gate)
            {
                return _sticky is not null || _floor != 0 || _unbounded;
            }
        }
    }

    /// <summary>The scope's own replica and the incarnation it was chosen in (null: none yet).</summary>
    public (ReplicaEndpoint? Replica, long Incarnation) Sticky
    {
        get
        {
            lock (_gate)
            {
                return (_sticky, _stickyIncarnation);
            }
        }
    }

    /// <summary>
    /// The replica the scope last read on, when it read on one since the last Long Fork check (null: none since): a move to
    /// the primary must first see what that replica showed (<see cref="LongForkWait"/>).
    /// </summary>
    public ReplicaEndpoint? StandbyReadSinceLongForkCheck
    {
        get
        {
            lock (_gate)
            {
                return _standbyRead;
            }
        }
    }

    /// <summary>
    /// The scope was restored from a consistency token and it was not checked since: the token's scope may have read on a
    /// standby (tokens carry positions, not where the reads ran), so a move to the primary checks it as one.
    /// </summary>
    public bool TokenReadSinceLongForkCheck
    {
        get
        {
            lock (_gate)
            {
                return _tokenRead;
            }
        }
    }

    /// <summary>
    /// A move to the primary must first pass the Long Fork wait (<see cref="StandbyReadSinceLongForkCheck"/> or
    /// <see cref="TokenReadSinceLongForkCheck"/>). Takes no lock: a hint, which the wait reads again under the lock.
    /// </summary>
    public bool LongForkDue => _longForkDue;

    /// <summary>The scope is restored from a consistency token: what the token's scope read may have come from a standby.</summary>
    public void TokenRestored()
    {
        lock (_gate)
        {
            _tokenRead = true;
            _longForkDue = true;
        }
    }

    /// <summary>The restored token asks nothing of this cluster's Long Fork check (it has no position here).</summary>
    public void TokenChecked()
    {
        lock (_gate)
        {
            _tokenRead = false;
            _longForkDue = _standbyRead is not null;
        }
    }

    /// <summary>
    /// A Long Fork check whose primary snapshot was asked for at <paramref name="sentAt"/> covers the scope's replica reads
    /// that finished before then, and the token it was restored from.
    /// </summary>
    public void LongForkChecked(long sentAt)
    {
        lock (_gate)
        {
            if (_standbyReadAt <= sentAt)
            {
                _standbyRead = null;
            }

            _tokenRead = false;
            _longForkDue = _standbyRead is not null;
        }
    }

    /// <summary>When the last read on the scope's own replica finished (a timestamp; 0 = none since it became the scope's).</summary>
    public long LastServedAt
    {
        get
        {
            lock (_gate)
            {
                return _lastServedAt;
            }
        }
    }

    /// <summary>At or beyond every position the scope's reads may have seen, except those on its own replica and the unbounded ones.</summary>
    public ulong Floor
    {
        get
        {
            lock (_gate)
            {
                return _floor;
            }
        }
    }

    /// <summary>Some command of the scope ran where the floor does not cover it yet: a primary position taken after it is needed.</summary>
    public bool Unbounded
    {
        get
        {
            lock (_gate)
            {
                return _unbounded;
            }
        }
    }

    /// <summary>Counts the unbounded commands; read before a primary position is captured.</summary>
    public long UnboundedGeneration
    {
        get
        {
            lock (_gate)
            {
                return _unboundedGeneration;
            }
        }
    }

    /// <summary>
    /// A read of the scope finished at <paramref name="now"/> on <paramref name="replica"/>, or on the primary (null). Only a
    /// read on the scope's own replica (in the incarnation it was chosen in) is covered without a bound.
    /// </summary>
    public void Served(ReplicaEndpoint? replica, long incarnation, long now)
    {
        lock (_gate)
        {
            _hasRead = true;
            if (replica is not null)
            {
                (_standbyRead, _standbyReadAt) = (replica, Math.Max(_standbyReadAt, now));
                _longForkDue = true;
            }

            if (replica is not null && ReferenceEquals(replica, _sticky) && incarnation == _stickyIncarnation)
            {
                _lastServedAt = Math.Max(_lastServedAt, now);
                return;
            }

            MarkUnboundedLocked(now);
        }
    }

    /// <summary>A command of the scope runs on the primary (a write, a read in a transaction, a fallback).</summary>
    public void StartedOnPrimary()
    {
        lock (_gate)
        {
            _hasRead = true;
            MarkUnboundedLocked(long.MaxValue); // it has not run yet: only a capture taken after it can bound it
        }
    }

    /// <summary>
    /// The primary's position <paramref name="lsn"/>, asked for at <paramref name="sentAt"/>, after every command counted up
    /// to <paramref name="generation"/> finished, bounds them and every read the scope's own replica finished before then:
    /// it becomes the floor (positions only move forward).
    /// </summary>
    public void BoundedByPrimary(ulong lsn, long generation, long sentAt)
    {
        lock (_gate)
        {
            RaiseLocked(lsn);
            if (_lastServedAt <= sentAt)
            {
                _lastServedAt = 0;
            }

            if (_unboundedGeneration == generation)
            {
                _unbounded = false;
            }
        }
    }

    /// <summary>
    /// The primary's position <paramref name="lsn"/>, read by a query sent at <paramref name="sentAt"/> (the monitor's sample or
    /// another scope's capture), bounds the scope's unbounded commands when every one of them finished before then (and the
    /// reads its own replica finished before then): it becomes the floor, as a capture of the scope's own would. True when
    /// nothing unbounded is left.
    /// </summary>
    public bool TryBoundBy(ulong lsn, long sentAt)
    {
        lock (_gate)
        {
            if (!_unbounded)
            {
                return true;
            }

            if (_unboundedUntil > sentAt)
            {
                return false;
            }

            RaiseLocked(lsn);
            if (_lastServedAt <= sentAt)
            {
                _lastServedAt = 0;
            }

            _unbounded = false;
            return true;
        }
    }

    /// <summary>Raises the floor (a bound of the scope's own replica's reads, or a restored token's position).</summary>
    public void Raise(ulong lsn)
    {
        lock (_gate)
        {
            RaiseLocked(lsn);
        }
    }

    /// <summary>
    /// Makes <paramref name="replica"/> (in <paramref name="incarnation"/>) the scope's own replica. The caller has put the
    /// reads of the previous one under the floor first (or it is the same one).
    /// </summary>
    public void Stick(ReplicaEndpoint replica, long incarnation)
    {
        lock (_gate)
        {
            if (!ReferenceEquals(replica, _sticky) || incarnation != _stickyIncarnation)
            {
                (_sticky, _stickyIncarnation, _lastServedAt) = (replica, incarnation, 0);
            }
        }
    }

    public void Reset()
    {
        lock (_gate)
        {
            (_sticky, _stickyIncarnation, _lastServedAt, _floor, _unbounded, _unboundedGeneration, _hasRead) = (null, 0, 0, 0, false, 0, false);
            (_unboundedUntil, _standbyRead, _standbyReadAt, _tokenRead, _longForkDue) = (0, null, 0, false, false);
        }
    }

    private void RaiseLocked(ulong lsn)
    {
        if (lsn > _floor)
        {
            _floor = lsn;
        }
    }

    private void MarkUnboundedLocked(long finishedAt)
    {
        _unboundedUntil = _unbounded ? Math.Max(_unboundedUntil, finishedAt) : finishedAt;
        _unbounded = true;
        _unboundedGeneration++;
    }
}
