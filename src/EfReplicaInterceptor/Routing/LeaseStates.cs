using System.Runtime.CompilerServices;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;

namespace EfReplicaInterceptor.Routing;

/// <summary>
/// The lease states of the contexts one set of interceptors serves. A context configured with the library's EF services
/// (<c>UseEfReplicaCluster</c>, <c>UseEfReplicaRouting</c>, <c>AddEfReplicaClusters</c>) keeps its state in its own EF
/// service scope (<see cref="ContextLease"/>): nothing is added to a shared table per context, and EF resets it when it resets
/// the context for its pool. A context configured with the interceptors alone (<c>AddInterceptors</c>) has no such service:
/// its state is kept beside it in a <see cref="ConditionalWeakTable{TKey, TValue}"/>, which does not hold it alive.
/// </summary>
internal sealed class LeaseStates
{
    private static readonly ConditionalWeakTable<DbContext, LeaseState>.CreateValueCallback Create = static context =>
    {
        var state = new LeaseState();
        ContextLease.Of(context)?.Attach(state); // another set of interceptors holds the context's own state: reset with it
        return state;
    };

    private readonly ConditionalWeakTable<DbContext, LeaseState> _states = new();

    /// <summary>The state of <paramref name="context"/>'s current lease (created on first use).</summary>
    public LeaseState Get(DbContext context)
    {
        var state = ContextLease.Of(context)?.Claim(this) ?? _states.GetValue(context, Create);
        state.EnsureLease(context.ContextId.Lease);
        return state;
    }

    /// <summary>The state of <paramref name="context"/>'s current lease, or null when the context has none yet.</summary>
    public LeaseState? Find(DbContext context)
    {
        var state = ContextLease.Of(context) is { } scoped ? scoped.Find(this) : null;
        if (state is null && !_states.TryGetValue(context, out state))
        {
            return null;
        }

        state.EnsureLease(context.ContextId.Lease);
        return state;
    }
}

/// <summary>
/// A context's lease state in the context's own EF service scope (an EF scoped service, registered by the library's options
/// extension), held by the first set of interceptors that asks for it; reset when EF resets the context for its pool (so a
/// tenant's cluster is let go when its lease ends, not when the context is next rented) and when the scope is disposed. A
/// context is used by one thread at a time, as its lease state is; only the claim is made safe against a race.
/// </summary>
internal sealed class ContextLease : IResettableService, IDisposable
{
    private readonly LeaseState _state = new();
    private LeaseStates? _owner;
    private List<LeaseState>? _others;

    /// <summary>
    /// <paramref name="context"/>'s lease service, or null when the context was configured without the library's EF services
    /// (or is disposed: its state was reset then, and nothing more is recorded for it).
    /// </summary>
    public static ContextLease? Of(DbContext context)
    {
        try
        {
            return ((IInfrastructure<IServiceProvider>)context).Instance.GetService(typeof(ContextLease)) as ContextLease;
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
    }

    /// <summary>The state kept here, for <paramref name="owner"/>; null when another set of interceptors on the same context holds it.</summary>
    public LeaseState? Claim(LeaseStates owner)
        => Interlocked.CompareExchange(ref _owner, owner, null) is not { } held || ReferenceEquals(held, owner) ? _state : null;

    /// <summary>The state kept here if <paramref name="owner"/> holds it (null before any command of the context asked).</summary>
    public LeaseState? Find(LeaseStates owner) => ReferenceEquals(Volatile.Read(ref _owner), owner) ? _state : null;

    /// <summary>A state another set of interceptors keeps for the same context in its own table: reset with this one.</summary>
    public void Attach(LeaseState state) => (_others ??= []).Add(state);

    public void ResetState()
    {
        _state.Reset();
        _others?.ForEach(static state => state.Reset());
    }

    public Task ResetStateAsync(CancellationToken cancellationToken = default)
    {
        ResetState();
        return Task.CompletedTask;
    }

    public void Dispose() => ResetState();
}
