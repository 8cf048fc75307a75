using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Routing;

/// <summary>The routing layer's answer for one command. <see cref="Replica"/> is set exactly when the target is a replica.</summary>
internal readonly struct RoutingDecision(RoutingReason reason, ReplicaEndpoint? replica)
{
    public RoutingReason Reason { get; } = reason;

    public ReplicaEndpoint? Replica { get; } = replica;

    public RoutingTarget Target => Replica is null ? RoutingTarget.Primary : RoutingTarget.Replica;

    public static RoutingDecision Primary(RoutingReason reason) => new(reason, null);
}
