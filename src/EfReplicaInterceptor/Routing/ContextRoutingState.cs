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

    /// <summary>The context has sent something other than a plain read to the primary in this lease.</summary>
    public bool HasWritten { get; set; }

    /// <summary>A command that needs its session (a write, a lock, SET, a transaction) ran on the current open connection.</summary>
    public bool SessionPinned { get; set; }

    public void EnsureLease(int lease)
    {
        if (_lease == lease)
        {
            return;
        }

        _lease = lease;
        HasWritten = false;
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
