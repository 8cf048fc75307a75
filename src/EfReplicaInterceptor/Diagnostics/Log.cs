using Microsoft.Extensions.Logging;

namespace EfReplicaInterceptor.Diagnostics;

/// <summary>
/// Every log event of the library, with stable event ids (documented in docs/diagnostics.md). Connection strings, passwords,
/// SQL text and parameter values are never logged; servers are named by their configured names.
/// </summary>
internal static partial class Log
{
    /// <summary>Category of routing decisions.</summary>
    public const string RoutingCategory = "EfReplicaInterceptor.Routing";

    /// <summary>Category of replica health and topology.</summary>
    public const string TopologyCategory = "EfReplicaInterceptor.Topology";

    /// <summary>Category of named and tenant clusters.</summary>
    public const string ClustersCategory = "EfReplicaInterceptor.Clusters";

    [LoggerMessage(EventId = EfReplicaEventId.CommandRouted, EventName = nameof(EfReplicaEventId.CommandRouted), Level = LogLevel.Debug,
        Message = "Command {CommandId} from {CommandSource} routed to {Target} ({Reason}) in cluster '{Cluster}'{Replica}")]
    public static partial void CommandRouted(ILogger logger, Guid commandId, string commandSource, string target, string reason, string cluster, string replica);

    [LoggerMessage(EventId = EfReplicaEventId.CommandRoutedShadow, EventName = nameof(EfReplicaEventId.CommandRoutedShadow), Level = LogLevel.Debug,
        Message = "Shadow mode: command {CommandId} from {CommandSource} would be routed to {Target} ({Reason}) in cluster '{Cluster}'{Replica}; sent to the primary")]
    public static partial void CommandRoutedShadow(ILogger logger, Guid commandId, string commandSource, string target, string reason, string cluster, string replica);

    [LoggerMessage(EventId = EfReplicaEventId.ReplicaFailedForCommand, EventName = nameof(EfReplicaEventId.ReplicaFailedForCommand), Level = LogLevel.Warning,
        Message = "Replica '{Replica}' of cluster '{Cluster}' failed for command {CommandId} ({ErrorKind}); the read is retried elsewhere")]
    public static partial void ReplicaFailedForCommand(ILogger logger, Exception exception, string replica, string cluster, Guid commandId, string errorKind);

    [LoggerMessage(EventId = EfReplicaEventId.ReplicaLeftRotation, EventName = nameof(EfReplicaEventId.ReplicaLeftRotation), Level = LogLevel.Warning,
        Message = "Replica '{Replica}' of cluster '{Cluster}' left the rotation: {Why}")]
    public static partial void ReplicaLeftRotation(ILogger logger, string replica, string cluster, string why);

    [LoggerMessage(EventId = EfReplicaEventId.ReplicaRejoinedRotation, EventName = nameof(EfReplicaEventId.ReplicaRejoinedRotation), Level = LogLevel.Warning,
        Message = "Replica '{Replica}' of cluster '{Cluster}' rejoined the rotation: {Why}")]
    public static partial void ReplicaRejoinedRotation(ILogger logger, string replica, string cluster, string why);

    [LoggerMessage(EventId = EfReplicaEventId.ClusterStarted, EventName = nameof(EfReplicaEventId.ClusterStarted), Level = LogLevel.Information,
        Message = "Cluster '{Cluster}' routes reads over {ReplicaCount} replica(s){Shadow}")]
    public static partial void ClusterStarted(ILogger logger, string cluster, int replicaCount, string shadow);

    [LoggerMessage(EventId = EfReplicaEventId.ReplicaKeptOut, EventName = nameof(EfReplicaEventId.ReplicaKeptOut), Level = LogLevel.Warning,
        Message = "Replica '{Replica}' of cluster '{Cluster}' is not used: {Why}")]
    public static partial void ReplicaKeptOut(ILogger logger, string replica, string cluster, string why);

    [LoggerMessage(EventId = EfReplicaEventId.MonitorRoundFailed, EventName = nameof(EfReplicaEventId.MonitorRoundFailed), Level = LogLevel.Error,
        Message = "A health probe round of cluster '{Cluster}' failed unexpectedly; monitoring goes on")]
    public static partial void MonitorRoundFailed(ILogger logger, Exception exception, string cluster);

    [LoggerMessage(EventId = EfReplicaEventId.PrimaryUnhealthy, EventName = nameof(EfReplicaEventId.PrimaryUnhealthy), Level = LogLevel.Warning,
        Message = "The primary of cluster '{Cluster}' is not healthy: {Why}")]
    public static partial void PrimaryUnhealthy(ILogger logger, string cluster, string why);

    [LoggerMessage(EventId = EfReplicaEventId.PrimaryHealthy, EventName = nameof(EfReplicaEventId.PrimaryHealthy), Level = LogLevel.Information,
        Message = "The primary of cluster '{Cluster}' answers again")]
    public static partial void PrimaryHealthy(ILogger logger, string cluster);

    [LoggerMessage(EventId = EfReplicaEventId.ReplicaAdmitted, EventName = nameof(EfReplicaEventId.ReplicaAdmitted), Level = LogLevel.Information,
        Message = "Replica '{Replica}' of cluster '{Cluster}' is in rotation (lag {LagSeconds} s)")]
    public static partial void ReplicaAdmitted(ILogger logger, string replica, string cluster, double lagSeconds);

    [LoggerMessage(EventId = EfReplicaEventId.ConsistencyTokenIgnored, EventName = nameof(EfReplicaEventId.ConsistencyTokenIgnored), Level = LogLevel.Warning,
        Message = "A consistency token was ignored in cluster '{Cluster}': {Why}")]
    public static partial void ConsistencyTokenIgnored(ILogger logger, string cluster, string why);

    [LoggerMessage(EventId = EfReplicaEventId.ConsistencyTokenClamped, EventName = nameof(EfReplicaEventId.ConsistencyTokenClamped), Level = LogLevel.Warning,
        Message = "A consistency token in cluster '{Cluster}' asked for a WAL position beyond the primary's current one (forged, or from before a failover); it was lowered to the current position")]
    public static partial void ConsistencyTokenClamped(ILogger logger, string cluster);

    [LoggerMessage(EventId = EfReplicaEventId.LongForkWaitExpired, EventName = nameof(EfReplicaEventId.LongForkWaitExpired), Level = LogLevel.Warning,
        Message = "A read of cluster '{Cluster}' moved from a standby to the primary, which did not show {Transactions} transaction(s) the standby showed committed within the read deadline; the read runs on the primary and may return older data than the scope saw")]
    public static partial void LongForkWaitExpired(ILogger logger, string cluster, int transactions);

    [LoggerMessage(EventId = EfReplicaEventId.LongForkUnfiltered, EventName = nameof(EfReplicaEventId.LongForkUnfiltered), Level = LogLevel.Information,
        Message = "A command of cluster '{Cluster}' moves to the primary after a read on a standby that cannot be asked (paused after a failure, gone, or unknown: a restored token), and the primary tracks no commit timestamps: it waits for all {Transactions} transaction(s) the primary's snapshot does not show, at most the read deadline")]
    public static partial void LongForkUnfiltered(ILogger logger, string cluster, int transactions);

    [LoggerMessage(EventId = EfReplicaEventId.PrimaryReadFailed, EventName = nameof(EfReplicaEventId.PrimaryReadFailed), Level = LogLevel.Warning,
        Message = "A read on the primary of cluster '{Cluster}' failed for command {CommandId} ({ErrorKind}); its pool is cleared and the read is retried")]
    public static partial void PrimaryReadFailed(ILogger logger, Exception exception, string cluster, Guid commandId, string errorKind);

    [LoggerMessage(EventId = EfReplicaEventId.WriteFailedOver, EventName = nameof(EfReplicaEventId.WriteFailedOver), Level = LogLevel.Warning,
        Message = "A command on the primary of cluster '{Cluster}' failed over ({ErrorKind}); outcome {Outcome}; not retried")]
    public static partial void WriteFailedOver(ILogger logger, string cluster, string errorKind, string outcome);

    [LoggerMessage(EventId = EfReplicaEventId.ReadFailedOver, EventName = nameof(EfReplicaEventId.ReadFailedOver), Level = LogLevel.Warning,
        Message = "A read of cluster '{Cluster}' failed for command {CommandId}: no server could run it within the read deadline ({ErrorKind})")]
    public static partial void ReadFailedOver(ILogger logger, Exception exception, string cluster, Guid commandId, string errorKind);

    [LoggerMessage(EventId = EfReplicaEventId.ReadFailedMidResult, EventName = nameof(EfReplicaEventId.ReadFailedMidResult), Level = LogLevel.Warning,
        Message = "A read of cluster '{Cluster}' failed on {Server} for command {CommandId} after {Rows} row(s) of its result had been read ({ErrorKind}); not retried")]
    public static partial void ReadFailedMidResult(ILogger logger, Exception exception, string cluster, string server, Guid commandId, long rows, string errorKind);

    [LoggerMessage(EventId = EfReplicaEventId.VolatileFunctionsLearned, EventName = nameof(EfReplicaEventId.VolatileFunctionsLearned), Level = LogLevel.Information,
        Message = "Cluster '{Cluster}' learned {Count} volatile function(s) of the application's schemas; reads calling them go to the primary")]
    public static partial void VolatileFunctionsLearned(ILogger logger, string cluster, int count);

    [LoggerMessage(EventId = EfReplicaEventId.VolatileFunctionsNotLearned, EventName = nameof(EfReplicaEventId.VolatileFunctionsNotLearned), Level = LogLevel.Warning,
        Message = "Cluster '{Cluster}' could not read the volatile functions from the primary yet; every command goes to the primary until it can")]
    public static partial void VolatileFunctionsNotLearned(ILogger logger, Exception exception, string cluster);

    [LoggerMessage(EventId = EfReplicaEventId.SplitBrainDetected, EventName = nameof(EfReplicaEventId.SplitBrainDetected), Level = LogLevel.Error,
        Message = "Split brain in cluster '{Cluster}': {Servers}. Writes may go to either; reads stay off every replica that accepts writes. Fence all but one of them now")]
    public static partial void SplitBrainDetected(ILogger logger, string cluster, string servers);

    [LoggerMessage(EventId = EfReplicaEventId.SplitBrainResolved, EventName = nameof(EfReplicaEventId.SplitBrainResolved), Level = LogLevel.Warning,
        Message = "Cluster '{Cluster}' has one writable server again (the split brain ended); check for writes that went to the fenced server")]
    public static partial void SplitBrainResolved(ILogger logger, string cluster);

    [LoggerMessage(EventId = EfReplicaEventId.ReplicaAnswersAsPrimary, EventName = nameof(EfReplicaEventId.ReplicaAnswersAsPrimary), Level = LogLevel.Information,
        Message = "Replica '{Replica}' of cluster '{Cluster}' answers as the primary; it takes no standby reads while it is")]
    public static partial void ReplicaAnswersAsPrimary(ILogger logger, string replica, string cluster);

    [LoggerMessage(EventId = EfReplicaEventId.ReplicaNowStandby, EventName = nameof(EfReplicaEventId.ReplicaNowStandby), Level = LogLevel.Information,
        Message = "Replica '{Replica}' of cluster '{Cluster}' is now a standby of the primary and in rotation (lag {LagSeconds} s)")]
    public static partial void ReplicaNowStandby(ILogger logger, string replica, string cluster, double lagSeconds);

    [LoggerMessage(EventId = EfReplicaEventId.PrimaryTypesReloaded, EventName = nameof(EfReplicaEventId.PrimaryTypesReloaded), Level = LogLevel.Information,
        Message = "Cluster '{Cluster}': reloaded the database types of {Host} for the primary's connections, now that it is writable ({Why})")]
    public static partial void PrimaryTypesReloaded(ILogger logger, string cluster, string host, string why);

    [LoggerMessage(EventId = EfReplicaEventId.TenantClusterCreated, EventName = nameof(EfReplicaEventId.TenantClusterCreated), Level = LogLevel.Information,
        Message = "Created the cluster of tenant '{Tenant}' from {Source}")]
    public static partial void TenantClusterCreated(ILogger logger, string tenant, string source);

    [LoggerMessage(EventId = EfReplicaEventId.TenantClusterEvicted, EventName = nameof(EfReplicaEventId.TenantClusterEvicted), Level = LogLevel.Information,
        Message = "Closed the cluster of tenant '{Tenant}' after {IdleSeconds:0.###} s without use; its server connections are closed")]
    public static partial void TenantClusterEvicted(ILogger logger, string tenant, double idleSeconds);

    [LoggerMessage(EventId = EfReplicaEventId.TenantRejected, EventName = nameof(EfReplicaEventId.TenantRejected), Level = LogLevel.Warning,
        Message = "Refused a DbContext for tenant '{Tenant}': {Why}")]
    public static partial void TenantRejected(ILogger logger, string tenant, string why);

    [LoggerMessage(EventId = EfReplicaEventId.TenantIsolationViolation, EventName = nameof(EfReplicaEventId.TenantIsolationViolation), Level = LogLevel.Error,
        Message = "Stopped a command of tenant '{Tenant}' before it was sent: {Why}")]
    public static partial void TenantIsolationViolation(ILogger logger, string tenant, string why);

    [LoggerMessage(EventId = EfReplicaEventId.TenantClusterDisposeFailed, EventName = nameof(EfReplicaEventId.TenantClusterDisposeFailed), Level = LogLevel.Warning,
        Message = "Closing the cluster of tenant '{Tenant}' failed")]
    public static partial void TenantClusterDisposeFailed(ILogger logger, Exception exception, string tenant);

    [LoggerMessage(EventId = EfReplicaEventId.ReplicaJoinedTopology, EventName = nameof(EfReplicaEventId.ReplicaJoinedTopology), Level = LogLevel.Information,
        Message = "Replica '{Replica}' joined cluster '{Cluster}' ({Source}); it takes reads once a probe finds it healthy")]
    public static partial void ReplicaJoinedTopology(ILogger logger, string replica, string cluster, string source);

    [LoggerMessage(EventId = EfReplicaEventId.ReplicaLeftTopology, EventName = nameof(EfReplicaEventId.ReplicaLeftTopology), Level = LogLevel.Information,
        Message = "Replica '{Replica}' left cluster '{Cluster}' ({Source}); it takes no more reads, and its connections close once the reads running there end")]
    public static partial void ReplicaLeftTopology(ILogger logger, string replica, string cluster, string source);

    [LoggerMessage(EventId = EfReplicaEventId.ReplicaDrained, EventName = nameof(EfReplicaEventId.ReplicaDrained), Level = LogLevel.Debug,
        Message = "Replica '{Replica}' of cluster '{Cluster}' drained in {Seconds} s; its data source is disposed")]
    public static partial void ReplicaDrained(ILogger logger, string replica, string cluster, double seconds);

    [LoggerMessage(EventId = EfReplicaEventId.ReplicaDrainFailed, EventName = nameof(EfReplicaEventId.ReplicaDrainFailed), Level = LogLevel.Warning,
        Message = "Replica '{Replica}' of cluster '{Cluster}' could not be drained and disposed cleanly")]
    public static partial void ReplicaDrainFailed(ILogger logger, Exception exception, string replica, string cluster);

    [LoggerMessage(EventId = EfReplicaEventId.ReplicaNotAdded, EventName = nameof(EfReplicaEventId.ReplicaNotAdded), Level = LogLevel.Warning,
        Message = "Replica '{Replica}' could not join cluster '{Cluster}': {Reason}")]
    public static partial void ReplicaNotAdded(ILogger logger, string replica, string cluster, string reason);

    [LoggerMessage(EventId = EfReplicaEventId.TopologyChangeRefused, EventName = nameof(EfReplicaEventId.TopologyChangeRefused), Level = LogLevel.Error,
        Message = "Cluster '{Cluster}': the changed configuration was refused and the running topology stays: {Problems}")]
    public static partial void TopologyChangeRefused(ILogger logger, string cluster, string problems);

    [LoggerMessage(EventId = EfReplicaEventId.SettingNeedsRestart, EventName = nameof(EfReplicaEventId.SettingNeedsRestart), Level = LogLevel.Warning,
        Message = "Cluster '{Cluster}': {Settings} changed in configuration; only the replica list and the replicas' weights apply while the application runs, the rest takes effect at the next start")]
    public static partial void SettingNeedsRestart(ILogger logger, string cluster, string settings);

    [LoggerMessage(EventId = EfReplicaEventId.TopologySourceFailed, EventName = nameof(EfReplicaEventId.TopologySourceFailed), Level = LogLevel.Warning,
        Message = "Cluster '{Cluster}' could not read its topology from {Source}: {Problem}; the last known topology stays")]
    public static partial void TopologySourceFailed(ILogger logger, string cluster, string source, string problem);

    [LoggerMessage(EventId = EfReplicaEventId.TopologySourceRecovered, EventName = nameof(EfReplicaEventId.TopologySourceRecovered), Level = LogLevel.Information,
        Message = "Cluster '{Cluster}' reads its topology from {Source} again")]
    public static partial void TopologySourceRecovered(ILogger logger, string cluster, string source);

    [LoggerMessage(EventId = EfReplicaEventId.LeaderChanged, EventName = nameof(EfReplicaEventId.LeaderChanged), Level = LogLevel.Information,
        Message = "Cluster '{Cluster}': member '{Leader}' is the primary now (before: {Previous}), says {Source}")]
    public static partial void LeaderChanged(ILogger logger, string cluster, string leader, string previous, string source);
}
