namespace EfReplicaInterceptor;

/// <summary>The outcome of classifying one command text: where it may run and why.</summary>
/// <param name="Target"><see cref="RoutingTarget.Replica"/> only when every statement in the text is provably a plain read.</param>
/// <param name="Reason"><see cref="RoutingReason.Read"/> for a plain read; otherwise the reason of the first statement that needs the primary
/// (<see cref="RoutingReason.WriteStatement"/>, <see cref="RoutingReason.LockingRead"/>, <see cref="RoutingReason.WriteFunction"/>,
/// <see cref="RoutingReason.SessionStatement"/> or <see cref="RoutingReason.Unrecognized"/>).</param>
public readonly record struct SqlClassification(RoutingTarget Target, RoutingReason Reason)
{
    /// <summary>True when the text may run on a replica.</summary>
    public bool IsReplicaSafe => Target == RoutingTarget.Replica;

    /// <summary>A plain read.</summary>
    public static SqlClassification PlainRead => new(RoutingTarget.Replica, RoutingReason.Read);

    /// <summary>A text that needs the primary for <paramref name="reason"/>.</summary>
    public static SqlClassification NeedsPrimary(RoutingReason reason) => new(RoutingTarget.Primary, reason);
}
