using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Routing;

/// <summary>
/// The routing layer's answer for one command. <see cref="Replica"/> is set exactly when the target is a replica.
/// <see cref="NeedsCatchUp"/> marks a read whose scope wrote: it is resolved (asynchronously on the async path) by
/// <see cref="CommandRouter.ResolveCatchUpAsync"/>.
/// </summary>
internal readonly struct RoutingDecision(RoutingReason reason, ReplicaEndpoint? replica)
{
    public RoutingReason Reason { get; } = reason;

    public ReplicaEndpoint? Replica { get; } = replica;

    public CausalState? ContextCausal { get; private init; }

    public CausalState? AmbientCausal { get; private init; }

    public bool NeedsCatchUp => ContextCausal is not null || AmbientCausal is not null;

    /// <summary>The replica was chosen under a constraint (caught up to a write, within a staleness budget): if it fails, the read goes to the primary, not to any replica.</summary>
    public bool IsConstrained { get; private init; }

    public RoutingTarget Target => Replica is null ? RoutingTarget.Primary : RoutingTarget.Replica;

    public static RoutingDecision Primary(RoutingReason reason) => new(reason, null);

    public static RoutingDecision ConstrainedRead(ReplicaEndpoint replica) => new(RoutingReason.Read, replica) { IsConstrained = true };

    public static RoutingDecision CatchUp(CausalState? contextCausal, CausalState? ambientCausal)
        => new(RoutingReason.AfterWrite, null) { ContextCausal = contextCausal, AmbientCausal = ambientCausal };
}
