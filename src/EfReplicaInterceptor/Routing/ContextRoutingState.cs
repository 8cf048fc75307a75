using System.Runtime.CompilerServices;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.Routing;

/// <summary>
/// Routing state of one DbContext lease. A DbContext is never used by two threads at once, so the fields need no
/// synchronisation. A pooled context (AddDbContextPool) gets a new lease number each time it is rented, and the state is
/// reset when the lease changes, so nothing leaks from one lease into the next.
/// </summary>
internal sealed class ContextRoutingState
{
    private int _lease;

    /// <summary>What this lease has written, for read-your-writes. One instance per context, reset per lease.</summary>
    public Consistency.CausalState Causal { get; } = new();

    /// <summary>A write is executing; its completion (or its transaction's commit) records it again.</summary>
    public bool WriteInFlight { get; set; }

    /// <summary>The in-flight write runs inside an EF transaction, so it is recorded again at the commit.</summary>
    public bool WriteInTransaction { get; set; }

    /// <summary>The ambient scope the in-flight write was recorded in, if any.</summary>
    public Consistency.CausalState? InFlightAmbient { get; set; }

    /// <summary>A command that needs its session (a write, a lock, SET, a transaction) ran on the current open connection.</summary>
    public bool SessionPinned { get; set; }

    public void EnsureLease(int lease)
    {
        if (_lease == lease)
        {
            return;
        }

        _lease = lease;
        Causal.Reset();
        WriteInFlight = false;
        WriteInTransaction = false;
        InFlightAmbient = null;
        SessionPinned = false;
    }
}

/// <summary>Per-context state kept beside the contexts, without holding them alive.</summary>
internal sealed class ContextRoutingStates
{
    private static readonly ConditionalWeakTable<DbContext, ContextRoutingState>.CreateValueCallback Create = static _ => new ContextRoutingState();

    private readonly ConditionalWeakTable<DbContext, ContextRoutingState> _states = new();

    public ContextRoutingState Get(DbContext context)
    {
        var state = _states.GetValue(context, Create);
        state.EnsureLease(context.ContextId.Lease);
        return state;
    }
}
