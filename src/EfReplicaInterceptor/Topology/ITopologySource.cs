namespace EfReplicaInterceptor.Topology;

/// <summary>The role a topology source gives a member of the cluster.</summary>
internal enum MemberRole : byte
{
    /// <summary>A standby: it may take reads when <see cref="TopologyMember.TakesReads"/> is set.</summary>
    Replica,

    /// <summary>The primary (Patroni's leader). EF's own connection stays the configured primary data source.</summary>
    Primary,
}

/// <summary>
/// One member of the cluster as a topology source reports it. Two reports of the same member are the same endpoint when
/// their <see cref="Key"/> is the same: a member re-pointed to another server (same name, another connection string) is a
/// new endpoint, and the old one is drained and disposed.
/// </summary>
/// <param name="Name">The name in logs, metrics and health reports (never the connection string).</param>
/// <param name="ConnectionString">The Npgsql connection string the library reaches the member with.</param>
/// <param name="Role">Primary or replica.</param>
/// <param name="TakesReads">Whether reads may be sent to it (a replica that is running or streaming and not tagged
/// <c>noloadbalance</c>); a member that takes none gets no endpoint.</param>
/// <param name="Weight">Its round-robin share, 1 to 100.</param>
/// <param name="State">What the source says of it (Patroni's <c>state</c>; <c>configured</c> for the static source).</param>
/// <param name="LagHintBytes">The source's own lag figure, in bytes, when it has one: only a hint, the monitor measures replay itself.</param>
internal sealed record TopologyMember(string Name, string ConnectionString, MemberRole Role, bool TakesReads, int Weight = 1, string State = "configured", long? LagHintBytes = null)
{
    /// <summary>Identifies the endpoint: name and connection string (compared exactly).</summary>
    public string Key => Name + "\n" + ConnectionString;
}

/// <summary>The cluster's members at one moment, as a source reports them.</summary>
/// <param name="Members">Every member, in the source's order.</param>
/// <param name="Source">Where it came from, for logs (<c>configuration</c>, <c>Patroni at http://…/cluster</c>).</param>
internal sealed record TopologySnapshot(IReadOnlyList<TopologyMember> Members, string Source)
{
    /// <summary>The member the source names as the primary (Patroni's leader), or null (a static source names none).</summary>
    public TopologyMember? Leader => Members.FirstOrDefault(static member => member.Role == MemberRole.Primary);

    /// <summary>The members that take reads, in order.</summary>
    public IEnumerable<TopologyMember> Readable => Members.Where(static member => member.Role == MemberRole.Replica && member.TakesReads);

    /// <summary>
    /// The members that get an endpoint, in order: the replica set. Those that take reads, and the leader while the source
    /// says it runs: the monitor probes it like any listed node, keeps it out of rotation while it answers as the primary
    /// (so a read for the primary can run on it while the primary's multi-host string has not noticed a promotion yet,
    /// Npgsql keeping a host it saw as a standby out for its recheck time), and admits it as soon as it answers as a
    /// standby (a switchover's old leader), whatever the source says a moment later.
    /// </summary>
    public IEnumerable<TopologyMember> Watched => Members.Where(static member => member.TakesReads || (member.Role == MemberRole.Primary && member.State == "running"));
}

/// <summary>
/// Where a cluster learns its members: the seam between the topology's origin (configuration, Patroni's REST API) and the
/// library, which keeps measuring lag and liveness itself. A source reports whole snapshots; the
/// <see cref="TopologyManager"/> turns each into endpoints (built and disposed in one place) and swaps the replica set.
/// </summary>
internal interface ITopologySource : IAsyncDisposable
{
    /// <summary>What the source is, for logs: <c>configuration</c>, <c>Patroni</c>.</summary>
    string Kind { get; }

    /// <summary>The members known without I/O at start-up (the static source's configured replicas), or null.</summary>
    TopologySnapshot? Initial { get; }

    /// <summary>
    /// Starts watching: <paramref name="publish"/> is called with every new snapshot (never concurrently with itself).
    /// </summary>
    void Start(Action<TopologySnapshot> publish);

    /// <summary>Looks now (a poll for Patroni; nothing for configuration, which reports changes itself) and publishes what it finds.</summary>
    Task RefreshAsync(CancellationToken cancellationToken);

    /// <summary>Asks for a look as soon as possible, without waiting (the read path calls it after a failover error).</summary>
    void RequestRefresh();
}
