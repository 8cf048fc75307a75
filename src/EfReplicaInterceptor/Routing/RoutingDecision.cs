using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Routing;

/// <summary>
/// Where one command goes. <see cref="Replica"/> is set exactly when the target is a replica. A decision whose
/// <see cref="NeedsResolving"/> is set is resolved (asynchronously on the async path) by
/// <see cref="CommandRouter.ResolveAsync"/> before it is used.
/// </summary>
internal readonly struct RoutingDecision(RoutingReason reason, ReplicaEndpoint? replica)
{
    public RoutingReason Reason { get; } = reason;

    public ReplicaEndpoint? Replica { get; } = replica;

    /// <summary>The lease's writes a read must see (read-your-writes still to resolve).</summary>
    public ScopeState? LeaseScope { get; private init; }

    /// <summary>The ambient scope's writes a read must see (read-your-writes still to resolve).</summary>
    public ScopeState? AmbientScope { get; private init; }

    public bool NeedsResolving => !Resolved && (LeaseScope is not null || AmbientScope is not null);

    /// <summary>
    /// Resolved to the primary by read-your-writes or monotonic reads (<see cref="ResolvedToPrimary"/>): the scopes are kept,
    /// so that the read can be resolved again (<see cref="Unresolved"/>) while the primary is gone, when a replica may have
    /// caught up with what they need.
    /// </summary>
    public bool Resolved { get; private init; }

    /// <summary>This decision was resolved to the primary and can be resolved again (see <see cref="Resolved"/>).</summary>
    public bool CanResolveAgain => Resolved && (LeaseScope is not null || AmbientScope is not null);

    /// <summary>Still to resolve: the scopes' writes must be seen (false: only their past reads, for monotonic reads).</summary>
    public bool WritesMustShow { get; private init; }

    /// <summary>Still to resolve: what the replica must meet besides the scopes' past (any, or within a staleness budget).</summary>
    public ReplicaRequirement Requirement { get; private init; }

    /// <summary>The replica was chosen under a constraint (caught up to a write, within a staleness budget): if it fails, the read goes to the primary, not to any replica.</summary>
    public bool IsConstrained { get; private init; }

    public RoutingTarget Target => Replica is null ? RoutingTarget.Primary : RoutingTarget.Replica;

    public static RoutingDecision Primary(RoutingReason reason) => new(reason, null);

    /// <summary>The primary for <paramref name="reason"/>, resolved from <paramref name="unresolved"/>, whose scopes are kept (see <see cref="Resolved"/>).</summary>
    public static RoutingDecision ResolvedToPrimary(RoutingReason reason, in RoutingDecision unresolved)
        => new(reason, null)
        {
            LeaseScope = unresolved.LeaseScope,
            AmbientScope = unresolved.AmbientScope,
            WritesMustShow = unresolved.WritesMustShow,
            Requirement = unresolved.Requirement,
            Resolved = true,
        };

    /// <summary>The decision as it was before it was resolved to the primary (see <see cref="ResolvedToPrimary"/>).</summary>
    public RoutingDecision Unresolved()
        => new(WritesMustShow ? RoutingReason.AfterWrite : RoutingReason.Read, null)
        {
            LeaseScope = LeaseScope,
            AmbientScope = AmbientScope,
            WritesMustShow = WritesMustShow,
            Requirement = Requirement,
        };

    public static RoutingDecision Read(ReplicaEndpoint replica, bool constrained) => new(RoutingReason.Read, replica) { IsConstrained = constrained };

    public static RoutingDecision ReadYourWrites(ScopeState? lease, ScopeState? ambient)
        => new(RoutingReason.AfterWrite, null) { LeaseScope = lease, AmbientScope = ambient, WritesMustShow = true, Requirement = ReplicaRequirement.Any };

    /// <summary>A plain read of scopes with a past, to resolve by the <see cref="ConsistencyResolver"/>.</summary>
    public static RoutingDecision ScopeRead(ScopeState? lease, ScopeState? ambient, ReplicaRequirement requirement)
        => new(RoutingReason.Read, null) { LeaseScope = lease, AmbientScope = ambient, Requirement = requirement };
}
