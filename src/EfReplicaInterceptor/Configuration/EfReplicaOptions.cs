namespace EfReplicaInterceptor;

/// <summary>
/// Settings of one replicated PostgreSQL cluster: the primary, its read replicas and how commands are routed.
/// Bound from a configuration section (by convention <c>"EfReplica"</c>) and validated when the host starts.
/// </summary>
public sealed class EfReplicaOptions
{
    /// <summary>The conventional configuration section name, <c>"EfReplica"</c>.</summary>
    public const string DefaultSectionName = "EfReplica";

    /// <summary>
    /// Npgsql connection string of the primary. Required. It may list several hosts with
    /// <c>Target Session Attributes=primary</c> so that writes find a promoted standby by themselves.
    /// </summary>
    public string? Primary { get; set; }

    /// <summary>How plain reads are spread over the replicas in rotation. Default: <see cref="LoadBalancing.RoundRobin"/>.</summary>
    public LoadBalancing LoadBalancing { get; set; } = LoadBalancing.RoundRobin;

    /// <summary>
    /// The read replicas (hot standbys). Default: none, in which case every command goes to the primary. Any node may be
    /// listed whatever its role, the primary included (a high-availability cluster lists every node): a listed node that
    /// answers as the primary takes no standby reads while it is, and joins the rotation when it becomes a standby. A list
    /// that is only the primary is refused. With configuration that reloads on change (<c>reloadOnChange</c>), the list and
    /// each replica's <see cref="ReplicaEndpointOptions.Weight"/> apply while the application runs: a replica added, removed
    /// or re-pointed takes effect without a restart (a removed one finishes the reads running on it first). Leave it empty
    /// when <see cref="Topology"/> names a source.
    /// </summary>
    public IList<ReplicaEndpointOptions> Replicas { get; set; } = [];

    /// <summary>
    /// Where the replicas come from when they are not listed in <see cref="Replicas"/>: an HA manager's view of the cluster
    /// (<see cref="TopologyOptions.Patroni"/>). Default: none (the replicas are <see cref="Replicas"/>).
    /// </summary>
    public TopologyOptions Topology { get; set; } = new();

    /// <summary>
    /// When <see langword="true"/>, every decision is made, logged and counted as usual, but every command is sent to the
    /// primary: a way to switch the library on in production and see what would move before anything moves. Default: <see langword="false"/>.
    /// </summary>
    public bool ShadowMode { get; set; }

    /// <summary>
    /// Names of the application's own functions that write (or otherwise need the primary), schema-qualified or not,
    /// for example <c>"audit.log_access"</c>. A read that calls one goes to the primary. Default: none.
    /// </summary>
    public IList<string> WriteFunctions { get; set; } = [];

    /// <summary>
    /// When <see langword="true"/>, the volatile functions of the application's own schemas (every schema but
    /// <c>pg_catalog</c>, <c>information_schema</c> and <c>pg_toast</c>) are read once from the primary's catalog at
    /// start-up and treated like <see cref="WriteFunctions"/>. Until they are known, every command goes to the primary.
    /// Default: <see langword="false"/>.
    /// </summary>
    public bool LearnVolatileFunctions { get; set; }

    /// <summary>
    /// How often the primary and every replica are probed (liveness, role, lag), and the base of the backoff before a
    /// failed replica is tried again. Must be positive. Default: 1 second.
    /// </summary>
    public TimeSpan HealthCheckInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long one health probe (connecting and one small query) may take before the server counts as unreachable.
    /// Must be positive. Default: 2 seconds.
    /// </summary>
    public TimeSpan HealthCheckTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// The replication lag above which a replica is left out of rotation: how far behind the primary its data may be.
    /// Measured from WAL positions, so an idle primary does not make a caught-up replica look late. Must be positive.
    /// Default: 5 seconds.
    /// </summary>
    public TimeSpan MaxReplicaLag { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How reads that follow a write in the same scope are kept from missing it. Default: <see cref="ReadYourWritesMode.WalPosition"/>.</summary>
    public ReadYourWritesMode ReadYourWrites { get; set; } = ReadYourWritesMode.WalPosition;

    /// <summary>With <see cref="ReadYourWritesMode.TimeWindow"/>: how long after a write reads stay on the primary. Must be positive. Default: 2 seconds.</summary>
    public TimeSpan ReadYourWritesWindow { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// With <see cref="ReadYourWritesMode.WalPosition"/>: how long a read after a write may wait for a replica to replay the
    /// write before it goes to the primary instead. Zero or more. Default: zero (go to the primary at once).
    /// </summary>
    public TimeSpan ReadYourWritesMaxWait { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// When <see langword="true"/>, reads never go back in time within a consistency scope (a DbContext lease, an ambient
    /// <see cref="EfReplicaScope.BeginConsistency(string?)"/> scope, a restored token): a scope keeps reading from the
    /// replica it started on, and moves to another replica only once that one has replayed everything the scope may have
    /// seen (else the read goes to the primary). This also keeps the commands of one EF operation (a split query, an
    /// Include chain) consistent with each other. When <see langword="false"/>, each read picks a replica with no memory of
    /// the scope. Default: <see langword="true"/>.
    /// </summary>
    public bool MonotonicReads { get; set; } = true;

    /// <summary>
    /// When <see langword="true"/> (and <see cref="MonotonicReads"/> is on), every command of a scope that read on a standby
    /// and that runs on the primary first waits until the primary's new snapshots include every transaction the standby
    /// already shows committed, whatever sends it there: a read resolved to the primary or failed over from its standby, a
    /// read tagged <c>UsePrimary()</c>, the commands of a transaction or of a pinned session, and writes (so an
    /// <c>UPDATE ... WHERE</c> does not miss a row the scope saw). PostgreSQL makes a commit visible on the primary only when
    /// the committing session leaves its process array, after the commit record was flushed (and, with synchronous
    /// replication, after the synchronous standby's acknowledgement), so a standby can show a commit the primary's sessions
    /// do not see yet ("Long Fork"). A scope restored from a consistency token counts as having read on a standby (tokens do
    /// not say where their reads ran). Costs one round trip to the primary and one to the standby before the scope's first
    /// command on the primary after its standby reads (one to the primary alone, when nothing is committing, with
    /// <c>track_commit_timestamp = on</c>); when the standby cannot be asked (a read just failed on it, it left, or it is a
    /// token's) and the primary tracks no commit timestamps, the wait is for every transaction the primary's snapshot does
    /// not show (event 1010). The wait lasts at most the read deadline (<c>Failover:ReadDeadline</c>). <see langword="false"/>
    /// switches all of it off. Default: <see langword="true"/>.
    /// </summary>
    public bool LongForkWait { get; set; } = true;

    /// <summary>
    /// For tests only (a deliberately broken capture, to show that a history checker can fail): when
    /// <see langword="true"/>, read-your-writes captures the primary's WAL <em>write</em> position
    /// (<c>pg_current_wal_lsn()</c>), which misses commits still in the WAL buffers under asynchronous commit, instead of its
    /// insert position. Not bound from configuration. Default: <see langword="false"/>.
    /// </summary>
    internal bool CaptureWritePositionForTests { get; set; }

    /// <summary>How reads are retried when a server fails over. See <see cref="FailoverOptions"/> for the defaults.</summary>
    public FailoverOptions Failover { get; set; } = new();

    /// <summary>
    /// What happens with a malformed or foreign consistency token, unless the scope says otherwise
    /// (<see cref="EfReplicaScope.BeginConsistency(string?, InvalidTokenHandling)"/>). Default: <see cref="InvalidTokenHandling.Throw"/>.
    /// </summary>
    public InvalidTokenHandling InvalidTokenHandling { get; set; } = InvalidTokenHandling.Throw;

    /// <summary>The replication lag in bytes of WAL above which a replica is left out of rotation. Must be positive when set. Default: none (time only).</summary>
    public long? MaxReplicaLagBytes { get; set; }
}

/// <summary>How plain reads are spread over the replicas in rotation.</summary>
public enum LoadBalancing
{
    /// <summary>In turn, each replica as often as its <see cref="ReplicaEndpointOptions.Weight"/>. The default.</summary>
    RoundRobin = 0,

    /// <summary>To the replica with the least measured replication lag (weights are ignored).</summary>
    LeastLag,
}

/// <summary>How reads that follow a write in the same consistency scope are kept from missing it.</summary>
public enum ReadYourWritesMode
{
    /// <summary>
    /// After a write, the scope's reads go to a replica only once it has replayed the write's WAL position (captured with
    /// one <c>pg_current_wal_insert_lsn()</c> on the primary per unit of work); until then to the primary. The default.
    /// </summary>
    WalPosition = 0,

    /// <summary>After a write, the scope's reads go to the primary for <see cref="EfReplicaOptions.ReadYourWritesWindow"/>.</summary>
    TimeWindow,

    /// <summary>After a write, the scope's reads go to the primary until the scope ends.</summary>
    Primary,

    /// <summary>No protection: reads after a write may miss it. Only for data where that is acceptable.</summary>
    Off,
}

/// <summary>What happens with a consistency token that is malformed or comes from another database cluster.</summary>
public enum InvalidTokenHandling
{
    /// <summary>The first read in the scope throws an <see cref="InvalidOperationException"/> that says what is wrong. The default.</summary>
    Throw = 0,

    /// <summary>The token is ignored (a Warning is logged), as if the scope had none.</summary>
    Ignore,
}

/// <summary>One read replica.</summary>
public sealed class ReplicaEndpointOptions
{
    /// <summary>
    /// A short name used in logs, metrics and health reports (never the connection string). Default: <c>host:port</c> of the connection string.
    /// </summary>
    public string? Name { get; set; }

    /// <summary>Npgsql connection string of the replica. Required.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>With round-robin balancing: this replica's share relative to the others, 1 to 100. Default: 1.</summary>
    public int Weight { get; set; } = 1;
}

/// <summary>Where a cluster learns its members when they are not listed in <see cref="EfReplicaOptions.Replicas"/>.</summary>
public sealed class TopologyOptions
{
    /// <summary>Patroni's REST API. Default: not used (no endpoints).</summary>
    public PatroniTopologyOptions Patroni { get; set; } = new();
}

/// <summary>
/// The replicas as Patroni reports them (<c>GET /cluster</c> on its REST API). The leader is the primary; each member in the
/// role of a replica (<c>replica</c>, <c>sync_standby</c>, …) whose state is <c>running</c> or <c>streaming</c> and that is
/// not tagged <c>noloadbalance</c> takes reads; the others take none. Polled every
/// <see cref="EfReplicaOptions.HealthCheckInterval"/>, and at once after a failover error. Patroni's own lag figure is only a
/// hint: the library measures each replica's replay itself, as with listed replicas. The primary's EF connection stays
/// <see cref="EfReplicaOptions.Primary"/> (list every member there with <c>Target Session Attributes=primary</c>, or a
/// proxy's address).
/// </summary>
public sealed class PatroniTopologyOptions
{
    /// <summary>
    /// Patroni REST API addresses, for example <c>http://10.0.0.1:8008</c>, one per member (any member answers for the whole
    /// cluster). Tried in turn, starting with the one that answered last; one poll never takes longer than
    /// <see cref="EfReplicaOptions.HealthCheckTimeout"/> in all. Default: none (Patroni is not used).
    /// </summary>
    public IList<string> Endpoints { get; set; } = [];

    /// <summary>
    /// The connection string the replicas are reached with: its credentials, database and settings, with each member's host
    /// and port from Patroni in place of its own. Default: <see cref="EfReplicaOptions.Primary"/> (its hosts replaced, its
    /// target session attributes removed).
    /// </summary>
    public string? ConnectionString { get; set; }
}
