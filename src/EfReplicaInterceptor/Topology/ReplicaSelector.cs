namespace EfReplicaInterceptor.Topology;

/// <summary>What a replica must satisfy to take a read.</summary>
internal enum ReplicaRequirementKind : byte
{
    /// <summary>Any replica that will take it, including one due for its single half-open probe after failures.</summary>
    Any,

    /// <summary>A replica in rotation whose current lag is within <see cref="ReplicaRequirement.MaxLag"/>.</summary>
    Fresh,

    /// <summary>A replica in rotation known to have replayed <see cref="ReplicaRequirement.Lsn"/>.</summary>
    CaughtUp,
}

/// <summary>
/// The predicate of one selection. A constrained one (fresh, caught up) never probes a paused replica. A fresh one may also
/// carry a position the replica must be known to have replayed (<see cref="AtLeast"/>).
/// </summary>
internal readonly record struct ReplicaRequirement(ReplicaRequirementKind Kind, TimeSpan MaxLag = default, ulong Lsn = 0)
{
    public static readonly ReplicaRequirement Any = new(ReplicaRequirementKind.Any);

    public static ReplicaRequirement FreshWithin(TimeSpan maxLag) => new(ReplicaRequirementKind.Fresh, MaxLag: maxLag);

    public static ReplicaRequirement CaughtUpTo(ulong lsn) => new(ReplicaRequirementKind.CaughtUp, Lsn: lsn);

    public bool IsConstrained => Kind != ReplicaRequirementKind.Any;

    /// <summary>
    /// This requirement, and known to have replayed at least <paramref name="floor"/> (what a scope may have seen already;
    /// 0 = no floor). Any replica with a floor is a caught-up one.
    /// </summary>
    public ReplicaRequirement AtLeast(ulong floor) => floor <= Lsn
        ? this
        : Kind == ReplicaRequirementKind.Any ? CaughtUpTo(floor) : this with { Lsn = floor };
}

/// <summary>
/// Picks the replica for a read: one loop over the replicas with the requirement as predicate, and the cluster's balancing
/// policy deciding which eligible replica comes first, for every kind of selection (so weights and least-lag apply to a read
/// after a write and to a staleness-bounded read as much as to a plain one). Thread-safe and allocation-free.
/// </summary>
internal sealed class ReplicaSelector
{
    private readonly ReplicaMembership _membership;
    private readonly bool _leastLag;
    private readonly TimeProvider _timeProvider;
    private readonly TimeSpan _maxLag;
    private readonly TimeSpan _calmLag;
    private readonly TimeSpan _probeOverdue;
    private int _next = -1;
    private int _spill = -1;

    /// <param name="membership">The cluster's replica set (each selection reads the current snapshot once: its replicas
    /// and their weights).</param>
    /// <param name="balancing">Which eligible replica comes first.</param>
    /// <param name="timeProvider">The clock of the lag arithmetic.</param>
    /// <param name="maxLag">
    /// The cluster's lag budget (<c>MaxReplicaLag</c>), checked again at every selection: a replica that was behind at its
    /// last probe is taken only while that lag plus the time since the probe (<see cref="ReplicaEndpoint.CurrentLag"/>: what
    /// it is if replay has stopped since) is within the budget, so a replica whose replay stalls between probes stops
    /// taking reads when the budget runs out, not a probe later. This applies to a replica more than half the budget behind
    /// at its probe; a calm one is trusted until the next probe, but no longer than two sampling intervals: a probe that is
    /// late (a monitor starved of CPU, a probe waiting on its deadline) does not stretch the trust. The lag itself is known only to within one sampling of
    /// the primary (<paramref name="sampleInterval"/>: the write a replica lacks may be that much older than the first
    /// sample it lacks), so that much is kept in hand. Null: no budget at selection (tests).
    /// </param>
    /// <param name="sampleInterval">How often the primary's position is sampled (<c>HealthCheckInterval</c>).</param>
    public ReplicaSelector(
        ReplicaMembership membership, LoadBalancing balancing, TimeProvider timeProvider, TimeSpan? maxLag = null, TimeSpan sampleInterval = default)
    {
        _maxLag = maxLag is { } budget ? budget - sampleInterval : TimeSpan.MaxValue;
        _calmLag = maxLag is { } calm ? calm / 2 : TimeSpan.MaxValue;
        _probeOverdue = sampleInterval > TimeSpan.Zero ? sampleInterval * 2 : TimeSpan.MaxValue;
        _membership = membership;
        _leastLag = balancing == LoadBalancing.LeastLag;
        _timeProvider = timeProvider;
    }

    /// <summary>A selector over a fixed set of replicas (tests), each with its weight.</summary>
    public ReplicaSelector(
        ReplicaEndpoint[] replicas, LoadBalancing balancing, IReadOnlyList<int> weights, TimeProvider timeProvider, TimeSpan? maxLag = null, TimeSpan sampleInterval = default)
        : this(new ReplicaMembership(ReplicaSetSnapshot.Of(replicas, weights)), balancing, timeProvider, maxLag, sampleInterval)
    {
    }

    /// <summary>The replica set this selector reads.</summary>
    public ReplicaMembership Membership => _membership;

    /// <summary>The replicas now (one snapshot).</summary>
    public IReadOnlyList<ReplicaEndpoint> Replicas => _membership.Current.Replicas;

    public bool HasReplicas => _membership.Current.Replicas.Length != 0;

    /// <summary>
    /// The replica that takes the read, skipping those whose <see cref="ReplicaEndpoint.Index"/> bit is set in
    /// <paramref name="excluded"/> (already tried), or
    /// null when none can. <paramref name="lagging"/> tells why none could: some replica was out only for its lag.
    /// </summary>
    /// <remarks>
    /// Weighted round-robin takes the replica the schedule names (it lists each replica as often as its weight) when that one
    /// can take the read; when it cannot (out of rotation, paused, not fresh enough, already tried), its share is spread over
    /// the replicas that can, by weight, with a second counter: with three equal replicas and one out, each of the other two
    /// gets half, not one of them two thirds. Least-lag takes the freshest, ties rotating over the tied replicas alike.
    /// </remarks>
    public ReplicaEndpoint? Select(in ReplicaRequirement requirement, ulong excluded, out bool lagging)
    {
        lagging = false;
        var snapshot = _membership.Current; // one replica set for the whole selection
        var replicas = snapshot.Replicas;
        if (replicas.Length == 0)
        {
            return null;
        }

        var ticket = (uint)Interlocked.Increment(ref _next);
        var now = _timeProvider.GetTimestamp();
        if (!_leastLag)
        {
            var schedule = snapshot.Schedule;
            var scheduled = schedule[(int)(ticket % (uint)schedule.Length)];
            if (scheduled < replicas.Length && (excluded & (1UL << replicas[scheduled].Index)) == 0 && IsEligible(replicas[scheduled], requirement, now, ref lagging))
            {
                if (replicas[scheduled].TryAcquire())
                {
                    lagging = false;
                    return replicas[scheduled];
                }

                excluded |= 1UL << replicas[scheduled].Index; // paused, or lost the race for its half-open probe
            }
        }

        while (true)
        {
            var best = _leastLag ? Freshest(replicas, requirement, excluded, ticket, now, ref lagging) : ByWeight(replicas, snapshot.Weights, requirement, excluded, now, ref lagging);
            if (best < 0)
            {
                return null;
            }

            if (replicas[best].TryAcquire())
            {
                return replicas[best];
            }

            excluded |= 1UL << replicas[best].Index; // paused, or lost the race for its half-open probe: the next one
        }
    }

    /// <summary>
    /// The share of a replica that cannot take the read, spread by weight over those that can: a second counter drawn over
    /// the eligible replicas' total weight. -1 when none is eligible.
    /// </summary>
    private int ByWeight(ReplicaEndpoint[] replicas, int[] weights, in ReplicaRequirement requirement, ulong excluded, long now, ref bool lagging)
    {
        var total = 0u;
        var eligible = 0UL;
        for (var index = 0; index < replicas.Length; index++)
        {
            if ((excluded & (1UL << replicas[index].Index)) == 0 && IsEligible(replicas[index], requirement, now, ref lagging))
            {
                eligible |= 1UL << index; // by position in this snapshot; excluded is by ReplicaEndpoint.Index
                total += (uint)WeightOf(weights, index);
            }
        }

        if (total == 0)
        {
            return -1;
        }

        var draw = (uint)Interlocked.Increment(ref _spill) % total;
        for (var index = 0; index < replicas.Length; index++)
        {
            if ((eligible & (1UL << index)) == 0)
            {
                continue;
            }

            var weight = (uint)WeightOf(weights, index);
            if (draw < weight)
            {
                return index;
            }

            draw -= weight;
        }

        return -1; // not reached: the draw is below the total
    }

    /// <summary>The eligible replica with the least lag now; ties rotate with <paramref name="ticket"/>. -1 when none is eligible.</summary>
    private int Freshest(ReplicaEndpoint[] replicas, in ReplicaRequirement requirement, ulong excluded, uint ticket, long now, ref bool lagging)
    {
        var bestRank = long.MaxValue;
        var ties = 0u;
        var tied = 0UL;
        for (var index = 0; index < replicas.Length; index++)
        {
            if ((excluded & (1UL << replicas[index].Index)) != 0 || !IsEligible(replicas[index], requirement, now, ref lagging))
            {
                continue;
            }

            var rank = LagRank(replicas[index], now);
            if (rank < bestRank)
            {
                (bestRank, ties, tied) = (rank, 1, 1UL << index);
            }
            else if (rank == bestRank)
            {
                ties++;
                tied |= 1UL << index;
            }
        }

        if (ties == 0)
        {
            return -1;
        }

        var skip = ticket % ties;
        for (var index = 0; index < replicas.Length; index++)
        {
            if ((tied & (1UL << index)) != 0 && skip-- == 0)
            {
                return index;
            }
        }

        return -1; // not reached
    }

    private static int WeightOf(int[] weights, int index) => index < weights.Length ? weights[index] : 1;

    /// <summary>
    /// The one listed node that answers as the primary (see <see cref="ClusterRoles.OnlyWritable"/>), or null: where a read
    /// for the primary can run while the primary's own connection string does not reach it yet (a promotion a multi-host
    /// string has not noticed).
    /// </summary>
    public ReplicaEndpoint? OnlyWritable() => ClusterRoles.OnlyWritable(_membership.Current.Replicas);

    /// <summary>
    /// Whether some replica is in rotation now; <paramref name="lagging"/> tells, when none is, that some replica was out
    /// only for its lag.
    /// </summary>
    public bool AnyInRotation(out bool lagging)
    {
        lagging = false;
        foreach (var replica in _membership.Current.Replicas)
        {
            if (replica.IsAdmitted)
            {
                return true;
            }

            lagging |= replica.Health.IsLagging;
        }

        return false;
    }

    /// <summary>
    /// Whether <paramref name="replica"/> (a scope's own replica) meets <paramref name="requirement"/> and is in rotation now:
    /// a scope that has read never lets its next read be a replica's half-open probe.
    /// </summary>
    public bool Accepts(ReplicaEndpoint replica, in ReplicaRequirement requirement)
    {
        var lagging = false;
        return replica.IsAdmitted && IsEligible(replica, requirement, _timeProvider.GetTimestamp(), ref lagging);
    }

    private bool IsEligible(ReplicaEndpoint replica, in ReplicaRequirement requirement, long now, ref bool lagging)
    {
        // Only a replica that was already more than half the budget behind at its probe (not calm) is judged between probes;
        // a calm one is trusted until the next probe, as admission's hysteresis does, while that probe is on time. Judged:
        // what it lagged at the probe plus the time since (it may have stopped replaying right after), against the budget.
        var health = replica.Health;
        if (health.Lag is { } lagAtProbe)
        {
            var sinceProbe = _timeProvider.GetElapsedTime(health.MeasuredAt, now);
            if ((lagAtProbe > _calmLag || sinceProbe > _probeOverdue) && lagAtProbe + sinceProbe > _maxLag)
            {
                lagging = true; // over the budget now, whatever the last probe said
                return false;
            }
        }

        switch (requirement.Kind)
        {
            case ReplicaRequirementKind.Any:
                if (!replica.IsAdmitted && replica.Health.IsLagging)
                {
                    lagging = true;
                }

                return true; // TryAcquire decides: in rotation, or due for its half-open probe
            case ReplicaRequirementKind.Fresh:
                if (!replica.IsAdmitted)
                {
                    return false;
                }

                if (replica.CurrentLag(now) is not { } lag || lag > requirement.MaxLag)
                {
                    lagging = true;
                    return false;
                }

                return replica.KnownReplayLsn >= requirement.Lsn;
            default:
                return replica.IsAdmitted && replica.KnownReplayLsn >= requirement.Lsn;
        }
    }

    private static long LagRank(ReplicaEndpoint replica, long now)
        => replica.CurrentLag(now) is { } lag ? lag.Ticks : long.MaxValue - 1;

    /// <summary>Smooth weighted round-robin order (as nginx does it): weights 3 and 1 give 0, 0, 1, 0.</summary>
    internal static int[] BuildSchedule(IReadOnlyList<int> weights)
    {
        if (weights.Count == 0)
        {
            return [0];
        }

        var total = weights.Sum();
        var current = new int[weights.Count];
        var schedule = new int[total];
        for (var slot = 0; slot < total; slot++)
        {
            var chosen = 0;
            for (var i = 0; i < weights.Count; i++)
            {
                current[i] += weights[i];
                if (current[i] > current[chosen])
                {
                    chosen = i;
                }
            }

            current[chosen] -= total;
            schedule[slot] = chosen;
        }

        return schedule;
    }
}
