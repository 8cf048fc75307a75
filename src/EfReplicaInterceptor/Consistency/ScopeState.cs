namespace EfReplicaInterceptor.Consistency;

/// <summary>
/// What one consistency scope (a DbContext lease, an ambient <see cref="EfReplicaConsistencyScope"/>) has written: whether a
/// write's WAL position still has to be captured, the position reads must wait for, and when the last write happened.
/// Shared by every context in an ambient scope, which may run concurrently, so every change takes a lock; the command path
/// reads <see cref="IsActive"/> only, and touches the rest only after a write.
/// </summary>
internal sealed class ScopeState
{
    private readonly Lock _gate = new();
    private volatile bool _active;
    private bool _pending;
    private long _generation;
    private ulong _requiredLsn;
    private ulong _systemIdentifier;
    private long _lastWriteTimestamp;
    private bool _hasWritten;
    private string? _restoredToken;
    private ulong _capturedLsn;
    private long _unverifiedSince;

    /// <summary>What this scope's reads may have seen, for monotonic reads.</summary>
    public ReadHistory Reads { get; } = new();

    /// <summary>Something in this scope constrains reads (a write, or a restored token).</summary>
    public bool IsActive => _active;

    /// <summary>A write happened whose WAL position has not been captured yet.</summary>
    public bool IsPending
    {
        get
        {
            lock (_gate)
            {
                return _pending;
            }
        }
    }

    /// <summary>The WAL position a replica must have replayed to serve this scope's reads (0 = none).</summary>
    public ulong RequiredLsn
    {
        get
        {
            lock (_gate)
            {
                return _requiredLsn;
            }
        }
    }

    /// <summary>The system identifier of the cluster <see cref="RequiredLsn"/> belongs to (0 = unknown).</summary>
    public ulong SystemIdentifier
    {
        get
        {
            lock (_gate)
            {
                return _systemIdentifier;
            }
        }
    }

    /// <summary>The scope wrote in this cluster (since its start or reset): a token carries a position for it.</summary>
    public bool HasWritten
    {
        get
        {
            lock (_gate)
            {
                return _hasWritten;
            }
        }
    }

    /// <summary>Records a write (at its start, and again when it completes or its transaction commits).</summary>
    public WriteMark MarkWrite(long timestamp)
    {
        lock (_gate)
        {
            var mark = new WriteMark(_generation + 1, _pending, _lastWriteTimestamp);
            _pending = true;
            _generation++;
            _hasWritten = true;
            _lastWriteTimestamp = timestamp;
            _active = true;
            return mark;
        }
    }

    /// <summary>
    /// Takes back the writes recorded since <paramref name="mark"/> (see <see cref="WriteMark"/>): they were certainly not
    /// applied (the command or its transaction never reached the primary), so there is nothing for reads to wait for. Nothing
    /// changes when a write was recorded after the mark's last one.
    /// </summary>
    public void Withdraw(WriteMark mark)
    {
        lock (_gate)
        {
            if (_generation != mark.Generation)
            {
                return;
            }

            _pending = mark.WasPending;
            _lastWriteTimestamp = mark.PreviousWriteTimestamp;
            _active = _pending || _requiredLsn != 0 || _lastWriteTimestamp != 0 || _restoredToken is not null;
        }
    }

    /// <summary>The write generation, read before a capture starts.</summary>
    public long Generation
    {
        get
        {
            lock (_gate)
            {
                return _generation;
            }
        }
    }

    /// <summary>
    /// Records a WAL position captured on the primary after the writes up to <paramref name="generation"/> completed. The
    /// pending flag is cleared only if no write was recorded since the capture started.
    /// </summary>
    public void Satisfy(ulong lsn, ulong systemIdentifier, long generation)
    {
        lock (_gate)
        {
            Require(lsn, systemIdentifier);
            if (lsn > _capturedLsn)
            {
                _capturedLsn = lsn;
            }

            if (_generation == generation)
            {
                _pending = false;
            }
        }
    }

    /// <summary>Raises the required position (positions only move forward).</summary>
    public void Require(ulong lsn, ulong systemIdentifier)
    {
        lock (_gate)
        {
            if (lsn > _requiredLsn)
            {
                _requiredLsn = lsn;
            }

            if (systemIdentifier != 0)
            {
                _systemIdentifier = systemIdentifier;
            }

            _active = true;
        }
    }

    /// <summary>True when the last write was less than <paramref name="window"/> ago.</summary>
    public bool WroteWithin(TimeSpan window, TimeProvider timeProvider)
    {
        lock (_gate)
        {
            return _lastWriteTimestamp != 0 && timeProvider.GetElapsedTime(_lastWriteTimestamp) < window;
        }
    }

    /// <summary>What a malformed or foreign restored token does in this scope; null = the cluster's setting.</summary>
    public InvalidTokenHandling? InvalidTokenHandling { get; set; }

    /// <summary>A token handed in by the application, checked on first use.</summary>
    public string? RestoredToken
    {
        get
        {
            lock (_gate)
            {
                return _restoredToken;
            }
        }
    }

    public void Restore(string token)
    {
        lock (_gate)
        {
            _restoredToken = token;
            _active = true;
        }

        Reads.TokenRestored(); // the token's reads may have run on a standby: a move to the primary checks them (Long Fork)
    }

    /// <summary>The restored token was rejected here (malformed, or naming no cluster this process knows): it is not passed on.</summary>
    public bool TokenRejected { get; set; }

    /// <summary>Takes the restored token for checking; later callers see none.</summary>
    public string? TakeRestoredToken()
    {
        lock (_gate)
        {
            var token = _restoredToken;
            _restoredToken = null;
            _active = _pending || _requiredLsn != 0 || _lastWriteTimestamp != 0;
            return token;
        }
    }

    /// <summary>When a restored token's position was beyond every primary position seen (0 = nothing to verify).</summary>
    public long UnverifiedSince
    {
        get
        {
            lock (_gate)
            {
                return _unverifiedSince;
            }
        }
    }

    /// <summary>Requires a restored token's position, which is verified later against a newer primary sample.</summary>
    public void RequireUnverified(ulong lsn, ulong systemIdentifier, long since)
    {
        lock (_gate)
        {
            Require(lsn, systemIdentifier);
            _unverifiedSince = since;
        }
    }

    /// <summary>
    /// A primary position sampled after the token was restored is below it: the token came from the future (forged, or
    /// from before a failover). Lowers the requirement to that sample, never below a position this scope captured itself.
    /// </summary>
    public void Clamp(ulong primaryLsn)
    {
        lock (_gate)
        {
            _requiredLsn = Math.Max(primaryLsn, _capturedLsn);
            _unverifiedSince = 0;
        }
    }

    /// <summary>The token's position turned out to be real.</summary>
    public void Verified()
    {
        lock (_gate)
        {
            _unverifiedSince = 0;
        }
    }

    public void Reset()
    {
        lock (_gate)
        {
            _active = false;
            _pending = false;
            _generation = 0;
            _requiredLsn = 0;
            _systemIdentifier = 0;
            _lastWriteTimestamp = 0;
            _hasWritten = false;
            _restoredToken = null;
            TokenRejected = false;
            _capturedLsn = 0;
            _unverifiedSince = 0;
        }

        Reads.Reset();
    }
}

/// <summary>
/// The state of a <see cref="ScopeState"/> before a sequence of write marks (a write, or the writes of one
/// transaction), and the generation of the sequence's last mark: what <see cref="ScopeState.Withdraw"/> restores.
/// </summary>
internal readonly record struct WriteMark(long Generation, bool WasPending, long PreviousWriteTimestamp);
