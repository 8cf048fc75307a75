using System.Runtime.CompilerServices;
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
/// The routing state of one DbContext lease: the one per-lease mechanism, for single clusters and tenants alike. A DbContext
/// is never used by two threads at once, so the fields need no synchronisation. A pooled context (AddDbContextPool) gets a
/// new lease number each time it is rented; the state is reset when the lease changes (and, for contexts configured with the
/// library's options extension, when EF resets the context for the pool), so nothing leaks from one lease into the next.
/// </summary>
internal sealed class LeaseState
{
    private int _lease;
    private ILeaseBinding? _binding;
    private WriteMark _withdrawLease;
    private WriteMark _withdrawAmbient;

    /// <summary>What this lease has written, for read-your-writes.</summary>
    public ReadYourWritesState Writes { get; } = new();

    /// <summary>A write is executing; its completion (or its transaction's commit) records it again.</summary>
    public bool WriteInFlight { get; set; }

    /// <summary>The in-flight write runs inside an EF transaction, so it is recorded again at the commit.</summary>
    public bool WriteInTransaction { get; set; }

    /// <summary>The ambient scope the in-flight write was recorded in, if any.</summary>
    public ReadYourWritesState? InFlightAmbient { get; set; }

    /// <summary>A command that needs its session (a write, a lock, SET, a transaction) ran on the current open connection.</summary>
    public bool SessionPinned { get; set; }

    /// <summary>
    /// EF counts its connection as open for a reader but it was left closed (see the connection interceptor): it is opened
    /// only when a command needs the primary.
    /// </summary>
    public bool PrimaryDeferred { get; set; }

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
    public void MarkWrite(ConsistencyResolver writer, ReadYourWritesState? ambient, long timestamp, bool inTransaction)
    {
        var mark = Writes.MarkWrite(writer, timestamp);
        var ambientMark = ambient?.MarkWrite(writer, timestamp) ?? default;
        var continues = WriteInFlight && ReferenceEquals(ambient, InFlightAmbient);
        _withdrawLease = continues ? _withdrawLease with { Generation = mark.Generation } : mark;
        _withdrawAmbient = continues ? _withdrawAmbient with { Generation = ambientMark.Generation } : ambientMark;
        WriteInFlight = true;
        WriteInTransaction = inTransaction;
        InFlightAmbient = ambient;
    }

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

        Writes.Withdraw(_withdrawLease);
        InFlightAmbient?.Withdraw(_withdrawAmbient);
        WriteInFlight = false;
        InFlightAmbient = null;
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
        Writes.Reset();
        WriteInFlight = false;
        WriteInTransaction = false;
        InFlightAmbient = null;
        SessionPinned = false;
        PrimaryDeferred = false;
        EndBinding();
    }
}

/// <summary>The lease states of the contexts one set of interceptors serves, kept beside the contexts without holding them alive.</summary>
internal sealed class LeaseStates
{
    private readonly ConditionalWeakTable<DbContext, LeaseState> _states = new();
    private readonly ConditionalWeakTable<DbContext, LeaseState>.CreateValueCallback _create;

    public LeaseStates(Action<DbContext, LeaseState>? created = null)
        => _create = created is null
            ? static _ => new LeaseState()
            : context =>
            {
                var state = new LeaseState();
                created(context, state);
                return state;
            };

    /// <summary>The state of <paramref name="context"/>'s current lease (created on first use).</summary>
    public LeaseState Get(DbContext context)
    {
        var state = _states.GetValue(context, _create);
        state.EnsureLease(context.ContextId.Lease);
        return state;
    }

    /// <summary>The state of <paramref name="context"/>'s current lease, or null when the context has none yet.</summary>
    public LeaseState? Find(DbContext context)
    {
        if (!_states.TryGetValue(context, out var state))
        {
            return null;
        }

        state.EnsureLease(context.ContextId.Lease);
        return state;
    }
}
