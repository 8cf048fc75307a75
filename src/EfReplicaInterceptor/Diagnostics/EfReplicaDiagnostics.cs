using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace EfReplicaInterceptor.Diagnostics;

/// <summary>
/// The names EfReplicaInterceptor reports under: one <see cref="Meter"/> named after the package, OpenTelemetry-style
/// instrument and tag names. Subscribe with <c>meterProviderBuilder.AddMeter(EfReplicaDiagnostics.MeterName)</c>.
/// </summary>
public static class EfReplicaDiagnostics
{
    /// <summary>The name of the library's <see cref="Meter"/>: <c>EfReplicaInterceptor</c>.</summary>
    public const string MeterName = "EfReplicaInterceptor";

    /// <summary>Counter of routed commands, tagged with target, reason, cluster and shadow mode. Unit <c>{command}</c>.</summary>
    public const string CommandsCounterName = "efreplica.commands";

    /// <summary>Counter of reads that were meant for a replica but ran on the primary because the replica failed for them. Unit <c>{command}</c>.</summary>
    public const string ReplicaFallbacksCounterName = "efreplica.replica.fallbacks";

    /// <summary>Tag: where the command was sent, <c>primary</c> or <c>replica</c>.</summary>
    public const string TargetTag = "efreplica.target";

    /// <summary>Tag: why, one of the names of <see cref="RoutingReason"/> (see <see cref="RoutingReasons.GetName(RoutingReason)"/>).</summary>
    public const string ReasonTag = "efreplica.reason";

    /// <summary>Tag: the cluster's name (never a connection string).</summary>
    public const string ClusterTag = "efreplica.cluster";

    /// <summary>Tag: the replica's configured name, when a replica was chosen.</summary>
    public const string ReplicaTag = "efreplica.replica";

    /// <summary>Tag: <see langword="true"/> when shadow mode sent the command to the primary whatever the decision was.</summary>
    public const string ShadowTag = "efreplica.shadow";

    /// <summary>Tag: the decided target before shadow mode was applied.</summary>
    public const string DecidedTargetTag = "efreplica.decided_target";
}
