using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace EfReplicaInterceptor.Diagnostics;

/// <summary>
/// The names EfReplicaInterceptor reports under: one <see cref="Meter"/> and one <see cref="ActivitySource"/> named after
/// the package, OpenTelemetry-style instrument, span and tag names. With OpenTelemetry, subscribe with
/// <c>tracerProviderBuilder.AddSource(EfReplicaDiagnostics.ActivitySourceName)</c> and
/// <c>meterProviderBuilder.AddMeter(EfReplicaDiagnostics.MeterName)</c> (docs/telemetry.md lists every name).
/// </summary>
public static class EfReplicaDiagnostics
{
    /// <summary>The name of the library's <see cref="Meter"/>: <c>EfReplicaInterceptor</c>.</summary>
    public const string MeterName = "EfReplicaInterceptor";

    /// <summary>The name of the library's <see cref="ActivitySource"/>: <c>EfReplicaInterceptor</c>.</summary>
    public const string ActivitySourceName = "EfReplicaInterceptor";

    /// <summary>
    /// The span of one routed command (<c>efreplica.route</c>, kind internal): from the decision to the moment the command is
    /// handed to the server that runs it; for a read the library runs itself, until its reader is returned to EF (retries and
    /// waits included). Tagged with <see cref="TargetTag"/>, <see cref="ReasonTag"/>, <see cref="ServerTag"/>,
    /// <see cref="ClusterTag"/> and, when a replica was chosen, <see cref="ReplicaTag"/>. Created only while a listener
    /// samples the <see cref="ActivitySourceName"/> source.
    /// </summary>
    public const string RouteActivityName = "efreplica.route";

    /// <summary>Counter of routed commands, tagged with target, reason, server, cluster and shadow mode. Unit <c>{command}</c>.</summary>
    public const string CommandsCounterName = "efreplica.commands";

    /// <summary>
    /// Counter of plain reads that ran on the primary because no replica could take them, tagged with the reason
    /// (<c>no-replica</c>, <c>replica-unavailable</c>, <c>replica-lagging</c>). Unit <c>{command}</c>.
    /// </summary>
    public const string ReadFallbacksCounterName = "efreplica.reads.fallbacks";

    /// <summary>Counter of reads that failed on a replica with a failover error and were retried elsewhere, tagged with the replica and error kind. Unit <c>{error}</c>.</summary>
    public const string ReplicaErrorsCounterName = "efreplica.replica.errors";

    /// <summary>Counter of round trips to the primary that captured a WAL position after a unit of work (read-your-writes). Unit <c>{query}</c>.</summary>
    public const string PositionCapturesCounterName = "efreplica.consistency.position_captures";

    /// <summary>Counter of round trips to a replica that checked its replayed position for a read after a write. Unit <c>{query}</c>.</summary>
    public const string ReplayChecksCounterName = "efreplica.consistency.replay_checks";

    /// <summary>
    /// Counter of standbys' replay positions taken from the primary's <c>pg_stat_replication</c>, read in the same statement as
    /// a position capture, and credited to the one replica they belong to: what spares a read after a write the replay check
    /// when the standby has replayed the write (synchronous replication with <c>remote_apply</c>). Stays 0 when the library's
    /// role cannot see those columns (it needs <c>pg_read_all_stats</c>, e.g. through <c>pg_monitor</c>). Unit <c>{report}</c>.
    /// </summary>
    public const string StandbyReplayReportsCounterName = "efreplica.consistency.standby_replay_reports";

    /// <summary>
    /// Counter of the Long Fork checks (<see cref="EfReplicaOptions.LongForkWait"/>): a scope that read on a standby moved to
    /// the primary, and the primary was asked whether it shows everything the standby did. Unit <c>{check}</c>. Tagged with
    /// <see cref="LongForkTransactionsTag"/>.
    /// </summary>
    public const string LongForkChecksCounterName = "efreplica.consistency.long_fork.checks";

    /// <summary>Counter of the round trips the Long Fork checks and waits spent (primary and standby). Unit <c>{query}</c>.</summary>
    public const string LongForkRoundTripsCounterName = "efreplica.consistency.long_fork.round_trips";

    /// <summary>
    /// Histogram of the Long Fork waits: how long a read waited for the primary to show transactions a standby already showed
    /// committed (only checks that found some). Unit <c>s</c>.
    /// </summary>
    public const string LongForkWaitDurationHistogramName = "efreplica.consistency.long_fork.wait.duration";

    /// <summary>Gauge: each replica's replication lag in seconds (unit <c>s</c>), tagged with cluster and replica.</summary>
    public const string ReplicaLagGaugeName = "efreplica.replica.lag";

    /// <summary>Gauge: each replica's replication lag in bytes of WAL (unit <c>By</c>), tagged with cluster and replica.</summary>
    public const string ReplicaLagBytesGaugeName = "efreplica.replica.lag_bytes";

    /// <summary>Gauge: 1 while a replica is in rotation, 0 while it is left out. Tagged with cluster and replica.</summary>
    public const string ReplicaUpGaugeName = "efreplica.replica.up";

    /// <summary>Gauge: the number of servers of the cluster that accept writes, as the monitor last saw them (unit <c>{server}</c>),
    /// tagged with cluster. 1 is normal; 2 or more is a split brain (see event 2010); 0 while the primary does not answer.</summary>
    public const string WritableServersGaugeName = "efreplica.split_brain.writable_servers";

    /// <summary>Tag: where the command was sent, <c>primary</c> or <c>replica</c>.</summary>
    public const string TargetTag = "efreplica.target";

    /// <summary>Tag: why, one of the names of <see cref="RoutingReason"/> (see <see cref="RoutingReasons.GetName(RoutingReason)"/>).</summary>
    public const string ReasonTag = "efreplica.reason";

    /// <summary>Tag: the cluster's name (never a connection string).</summary>
    public const string ClusterTag = "efreplica.cluster";

    /// <summary>
    /// Tag: the server that ran the command, as <c>host:port</c> (the address of the connection, never a connection string
    /// or a user name).
    /// </summary>
    public const string ServerTag = "efreplica.server";

    /// <summary>Tag: the replica's configured name, when a replica was chosen.</summary>
    public const string ReplicaTag = "efreplica.replica";

    /// <summary>Tag: <see langword="true"/> when shadow mode sent the command to the primary whatever the decision was.</summary>
    public const string ShadowTag = "efreplica.shadow";

    /// <summary>Tag: the kind of failover error (<c>unreachable</c>, <c>connection-lost</c>, <c>read-only</c>, <c>recovery-conflict</c>).</summary>
    public const string ErrorKindTag = "efreplica.error_kind";

    /// <summary>Tag: the decided target before shadow mode was applied.</summary>
    public const string DecidedTargetTag = "efreplica.decided_target";

    /// <summary>Tag on <see cref="LongForkWaitDurationHistogramName"/>: <c>seen</c> (the primary showed them) or <c>deadline</c> (the read deadline passed first).</summary>
    public const string OutcomeTag = "efreplica.outcome";

    /// <summary>
    /// Tag on <see cref="LongForkChecksCounterName"/>: which transactions the check waited for: <c>standby</c> (those the
    /// scope's standby showed committed), <c>commit_timestamps</c> (those the primary has commit records of), <c>unfiltered</c>
    /// (every one the primary's snapshot does not show: the standby could not be asked and the primary tracks no commit
    /// timestamps) or <c>none</c> (nothing asked, or the primary failed).
    /// </summary>
    public const string LongForkTransactionsTag = "efreplica.long_fork.transactions";
}
