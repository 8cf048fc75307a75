namespace EfReplicaInterceptor.Topology;

/// <summary>
/// The replicas of a cluster at one moment: an immutable snapshot, swapped as a whole when the topology changes, so that
/// every reader (the selector, the monitor, the health check, the gauges) sees one consistent set without a lock.
/// </summary>
/// <param name="Replicas">The replicas, in the source's order. Each keeps its <see cref="ReplicaEndpoint.Index"/> (a slot
/// under 64, stable for the endpoint's life) whatever its position here.</param>
/// <param name="Weights">Each replica's weight for round-robin, by position.</param>
/// <param name="Version">Raised by each swap (0: the first set).</param>
internal sealed record ReplicaSetSnapshot(ReplicaEndpoint[] Replicas, int[] Weights, long Version)
{
    /// <summary>No replica.</summary>
    public static readonly ReplicaSetSnapshot Empty = new([], [], 0);

    /// <summary>Smooth weighted round-robin order over the positions of <see cref="Replicas"/>, built once per snapshot.</summary>
    public int[] Schedule { get; } = ReplicaSelector.BuildSchedule(Weights);

    /// <summary>A snapshot of <paramref name="replicas"/> with the given weights (every weight 1 when null).</summary>
    public static ReplicaSetSnapshot Of(ReplicaEndpoint[] replicas, IReadOnlyList<int>? weights = null, long version = 0)
        => new(replicas, weights is null ? [.. replicas.Select(static _ => 1)] : [.. weights], version);
}

/// <summary>
/// Holds the cluster's current <see cref="ReplicaSetSnapshot"/> and lets the read path ask the topology source to look
/// again at once (after a failover error) without knowing which source it is.
/// </summary>
internal sealed class ReplicaMembership(ReplicaSetSnapshot initial)
{
    private volatile ReplicaSetSnapshot _current = initial;
    private volatile Action? _refresh;

    /// <summary>The replicas now. Read it once per decision: a later read may be another set.</summary>
    public ReplicaSetSnapshot Current => _current;

    /// <summary>Replaces the set (by the topology's one writer, <see cref="TopologyManager"/>).</summary>
    public void Publish(ReplicaSetSnapshot next) => _current = next;

    /// <summary>Where <see cref="RequestRefresh"/> goes (the topology source); set once by the composition root.</summary>
    public void OnRefreshRequested(Action refresh) => _refresh = refresh;

    /// <summary>
    /// Asks the topology source to look again now (a failover error suggests the cluster changed). Cheap and never blocks:
    /// a source that polls wakes its loop (at most one poll pending); a static one ignores it.
    /// </summary>
    public void RequestRefresh() => _refresh?.Invoke();
}
