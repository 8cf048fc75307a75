using EfReplicaInterceptor.Consistency;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.Routing;

/// <summary>
/// What one DbContext lease is bound to beyond its routing state: for a tenant context, the tenant's cluster, held until
/// the lease ends. Released exactly once.
/// </summary>
internal interface ILeaseBinding
{
    void Release();
}

/// <summary>
/// The routing state of one DbContext lease: the one per-lease mechanism, for single clusters and tenants alike. It owns its
/// transitions (a write starts, completes, is withdrawn; a session is pinned and ends): callers say what happened, never set
/// its fields. A DbContext is never used by two threads at once, so the fields need no synchronisation. A pooled context (AddDbContextPool) gets a
/// new lease number each time it is rented; the state is reset when the lease changes (and, for contexts configured with the
/// library's options extension, when EF resets the context for the pool), so nothing leaks from one lease into the next.
/// </summary>
internal sealed class LeaseState
{
    private int _lease;
    private ILeaseBinding? _binding;
    private WriteMark _withdrawLease;
    private WriteMark _withdrawAmbient;
    private bool _writeInTransaction;
    private ScopeState? _inFlightAmbient;

    /// <summary>What this lease has written, for read-your-writes.</summary>
    public ScopeState Scope { get; } = new();

    /// <summary>A write is executing (or its EF transaction has not committed): its completion records it again.</summary>
    public bool WriteInFlight { get; private set; }

    /// <summary>A command that needs its session (a write, a lock, SET, a transaction) ran on the current open connection.</summary>
    public bool SessionPinned { get; private set; }

    /// <summary>The lease's binding (a tenant's cluster), if any.</summary>
    public ILeaseBinding? Binding => Volatile.Read(ref _binding);

    /// <summary>Binds the lease; a binding left from before is released first.</summary>
    public void Bind(ILeaseBinding binding)
    {
        EndBinding();
        Volatile.Write(ref _binding, binding);
    }

    /// <summary>Ends the binding, if any (idempotent).</summary>
    public void EndBinding() => Interlocked.Exchange(ref _binding, null)?.Release();

    /// <summary>
    /// Records that a command of this lease writes (at its start): the lease and the ambient scope it runs in must see it.
    /// </summary>
    public void MarkWrite(ScopeState? ambient, long timestamp, bool inTransaction)
    {
        var mark = Scope.MarkWrite(timestamp);
        var ambientMark = ambient?.MarkWrite(timestamp) ?? default;
        var continues = WriteInFlight && ReferenceEquals(ambient, _inFlightAmbient);
        _withdrawLease = continues ? _withdrawLease with { Generation = mark.Generation } : mark;
        _withdrawAmbient = continues ? _withdrawAmbient with { Generation = ambientMark.Generation } : ambientMark;
        WriteInFlight = true;
        _writeInTransaction = inTransaction;
        _inFlightAmbient = ambient;
    }

    /// <summary>
    /// The in-flight write finished (its reader was disposed, its non-query returned) or its transaction committed
    /// (<paramref name="committed"/>): the lease and the ambient scope it wrote in record it again, so that a position
    /// captured while it ran does not count as covering it. A write inside an EF transaction stays in flight until the commit.
    /// </summary>
    public void CompleteWrite(long timestamp, bool committed)
    {
        if (!WriteInFlight)
        {
            return;
        }

        Scope.MarkWrite(timestamp);
        _inFlightAmbient?.MarkWrite(timestamp);
        if (committed || !_writeInTransaction)
        {
            WriteInFlight = false;
        }
    }

    /// <summary>
    /// A standby refused a statement the classifier took for a read (25006): it is a write, done on the primary, and so is
    /// the rest of this lease's work (its session is pinned there). It was not sent to the primary yet, so it is not in
    /// flight: nothing to withdraw should it fail there.
    /// </summary>
    public void StandbyRefusedWrite(ScopeState? ambient, long timestamp)
    {
        MarkWrite(ambient, timestamp, inTransaction: false);
        WriteInFlight = false;
        SessionPinned = true;
    }

    /// <summary>A command that needs its session ran on the open connection: the lease's reads stay on it until it closes.</summary>
    public void PinSession() => SessionPinned = true;

    /// <summary>EF's connection closed: the session a command pinned is gone.</summary>
    public void SessionEnded() => SessionPinned = false;

    /// <summary>
    /// The in-flight write (or the writes of the in-flight transaction) certainly did not reach the primary: its marks are
    /// taken back, so a lease whose write failed before it was sent (the primary down) reads from replicas as before.
    /// </summary>
    public void WithdrawWrite()
    {
        if (!WriteInFlight)
        {
            return;
        }

        Scope.Withdraw(_withdrawLease);
        _inFlightAmbient?.Withdraw(_withdrawAmbient);
        WriteInFlight = false;
        _inFlightAmbient = null;
    }

    /// <summary>Starts lease <paramref name="lease"/> when it is not the current one.</summary>
    public void EnsureLease(int lease)
    {
        if (_lease != lease)
        {
            _lease = lease;
            Reset();
        }
    }

    /// <summary>Forgets everything of the lease, and ends its binding.</summary>
    public void Reset()
    {
        Scope.Reset();
        WriteInFlight = false;
        _writeInTransaction = false;
        _inFlightAmbient = null;
        SessionPinned = false;
        EndBinding();
    }
}
