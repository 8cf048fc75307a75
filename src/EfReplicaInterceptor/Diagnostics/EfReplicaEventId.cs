namespace EfReplicaInterceptor.Diagnostics;

/// <summary>
/// The ids of every log event of the library, stable across versions (filter on them, alert on them). Events 1000–1999 are
/// routing decisions and read-your-writes (category <c>EfReplicaInterceptor.Routing</c>), 2000–2999 replica health and
/// topology (<c>EfReplicaInterceptor.Topology</c>), 3000–3999 named and tenant clusters (<c>EfReplicaInterceptor.Clusters</c>).
/// Each event's name is the name of its constant here. No event carries SQL text, parameter values, passwords or
/// connection strings; servers are named by their configured names.
/// </summary>
public static class EfReplicaEventId
{
    /// <summary>Debug (EfReplicaInterceptor.Routing): "Command {CommandId} from {CommandSource} routed to {Target} ({Reason}) in cluster '{Cluster}'{Replica}".</summary>
    public const int CommandRouted = 1000;

    /// <summary>Debug (EfReplicaInterceptor.Routing): "Shadow mode: command {CommandId} from {CommandSource} would be routed to {Target} ({Reason}) in cluster '{Cluster}'{Replica}; sent to the primary".</summary>
    public const int CommandRoutedShadow = 1001;

    /// <summary>Warning (EfReplicaInterceptor.Routing): "Replica '{Replica}' of cluster '{Cluster}' failed for command {CommandId} ({ErrorKind}); the read is retried elsewhere".</summary>
    public const int ReplicaFailedForCommand = 1002;

    /// <summary>Warning (EfReplicaInterceptor.Routing): "A consistency token was ignored in cluster '{Cluster}': {Why}".</summary>
    public const int ConsistencyTokenIgnored = 1003;

    /// <summary>Warning (EfReplicaInterceptor.Routing): "A consistency token in cluster '{Cluster}' asked for a WAL position beyond the primary's current one (forged, or from before a failover); it was lowered to the current position".</summary>
    public const int ConsistencyTokenClamped = 1004;

    /// <summary>Warning (EfReplicaInterceptor.Routing): "A read on the primary of cluster '{Cluster}' failed for command {CommandId} ({ErrorKind}); its pool is cleared and the read is retried".</summary>
    public const int PrimaryReadFailed = 1005;

    /// <summary>Warning (EfReplicaInterceptor.Routing): "A command on the primary of cluster '{Cluster}' failed over ({ErrorKind}); outcome {Outcome}; not retried".</summary>
    public const int WriteFailedOver = 1006;

    /// <summary>Warning (EfReplicaInterceptor.Routing): "A read of cluster '{Cluster}' failed for command {CommandId}: no server could run it within the read deadline ({ErrorKind})".</summary>
    public const int ReadFailedOver = 1007;

    /// <summary>Warning (EfReplicaInterceptor.Routing): "A read of cluster '{Cluster}' failed on {Server} for command {CommandId} after {Rows} row(s) of its result had been read ({ErrorKind}); not retried": the server hung (the read deadline passed within one call into the result) or the connection was lost while EF was reading the rows; the caller gets an <see cref="EfReplicaFailoverException"/> (not applied) saying how many rows it had.</summary>
    public const int ReadFailedMidResult = 1008;

    /// <summary>Warning (EfReplicaInterceptor.Routing): "A read of cluster '{Cluster}' moved from a standby to the primary, which did not show {Transactions} transaction(s) the standby showed committed within the read deadline; the read runs on the primary and may return older data than the scope saw": see <see cref="EfReplicaOptions.LongForkWait"/>.</summary>
    public const int LongForkWaitExpired = 1009;

    /// <summary>Information (EfReplicaInterceptor.Routing): "A command of cluster '{Cluster}' moves to the primary after a read on a standby that cannot be asked (paused after a failure, gone, or unknown: a restored token), and the primary tracks no commit timestamps: it waits for all {Transactions} transaction(s) the primary's snapshot does not show, at most the read deadline": the unfiltered Long Fork wait, see <see cref="EfReplicaOptions.LongForkWait"/>.</summary>
    public const int LongForkUnfiltered = 1010;

    /// <summary>Warning (EfReplicaInterceptor.Topology): "Replica '{Replica}' of cluster '{Cluster}' left the rotation: {Why}".</summary>
    public const int ReplicaLeftRotation = 2000;

    /// <summary>Warning (EfReplicaInterceptor.Topology): "Replica '{Replica}' of cluster '{Cluster}' rejoined the rotation: {Why}".</summary>
    public const int ReplicaRejoinedRotation = 2001;

    /// <summary>Information (EfReplicaInterceptor.Topology): "Cluster '{Cluster}' routes reads over {ReplicaCount} replica(s){Shadow}".</summary>
    public const int ClusterStarted = 2002;

    /// <summary>Warning (EfReplicaInterceptor.Topology): "Replica '{Replica}' of cluster '{Cluster}' is not used: {Why}".</summary>
    public const int ReplicaKeptOut = 2003;

    /// <summary>Error (EfReplicaInterceptor.Topology): "A health probe round of cluster '{Cluster}' failed unexpectedly; monitoring goes on".</summary>
    public const int MonitorRoundFailed = 2004;

    /// <summary>Warning (EfReplicaInterceptor.Topology): "The primary of cluster '{Cluster}' is not healthy: {Why}".</summary>
    public const int PrimaryUnhealthy = 2005;

    /// <summary>Information (EfReplicaInterceptor.Topology): "The primary of cluster '{Cluster}' answers again".</summary>
    public const int PrimaryHealthy = 2006;

    /// <summary>Information (EfReplicaInterceptor.Topology): "Replica '{Replica}' of cluster '{Cluster}' is in rotation (lag {LagSeconds} s)".</summary>
    public const int ReplicaAdmitted = 2007;

    /// <summary>Information (EfReplicaInterceptor.Topology): "Cluster '{Cluster}' learned {Count} volatile function(s) of the application's schemas; reads calling them go to the primary".</summary>
    public const int VolatileFunctionsLearned = 2008;

    /// <summary>Warning (EfReplicaInterceptor.Topology): "Cluster '{Cluster}' could not read the volatile functions from the primary yet; every command goes to the primary until it can".</summary>
    public const int VolatileFunctionsNotLearned = 2009;

    /// <summary>Error (EfReplicaInterceptor.Topology): "Split brain in cluster '{Cluster}': {Servers}. Writes may go to either; reads stay off every replica that accepts writes. Fence all but one of them now".</summary>
    public const int SplitBrainDetected = 2010;

    /// <summary>Warning (EfReplicaInterceptor.Topology): "Cluster '{Cluster}' has one writable server again (the split brain ended); check for writes that went to the fenced server".</summary>
    public const int SplitBrainResolved = 2011;

    /// <summary>Information (EfReplicaInterceptor.Topology): "Replica '{Replica}' joined cluster '{Cluster}' ({Source}); it takes reads once a probe finds it healthy".</summary>
    public const int ReplicaJoinedTopology = 2100;

    /// <summary>Information (EfReplicaInterceptor.Topology): "Replica '{Replica}' left cluster '{Cluster}' ({Source}); it takes no more reads, and its connections close once the reads running there end".</summary>
    public const int ReplicaLeftTopology = 2101;

    /// <summary>Debug (EfReplicaInterceptor.Topology): "Replica '{Replica}' of cluster '{Cluster}' drained in {Seconds} s; its data source is disposed".</summary>
    public const int ReplicaDrained = 2102;

    /// <summary>Warning (EfReplicaInterceptor.Topology): "Replica '{Replica}' of cluster '{Cluster}' could not be drained and disposed cleanly".</summary>
    public const int ReplicaDrainFailed = 2103;

    /// <summary>Warning (EfReplicaInterceptor.Topology): "Replica '{Replica}' could not join cluster '{Cluster}': {Reason}".</summary>
    public const int ReplicaNotAdded = 2104;

    /// <summary>Error (EfReplicaInterceptor.Topology): "Cluster '{Cluster}': the changed configuration was refused and the running topology stays: {Problems}".</summary>
    public const int TopologyChangeRefused = 2105;

    /// <summary>Warning (EfReplicaInterceptor.Topology): "Cluster '{Cluster}': {Settings} changed in configuration; only the replica list and the replicas' weights apply while the application runs, the rest takes effect at the next start".</summary>
    public const int SettingNeedsRestart = 2106;

    /// <summary>Warning (EfReplicaInterceptor.Topology): "Cluster '{Cluster}' could not read its topology from {Source}: {Problem}; the last known topology stays".</summary>
    public const int TopologySourceFailed = 2107;

    /// <summary>Information (EfReplicaInterceptor.Topology): "Cluster '{Cluster}' reads its topology from {Source} again".</summary>
    public const int TopologySourceRecovered = 2108;

    /// <summary>Information (EfReplicaInterceptor.Topology): "Cluster '{Cluster}': member '{Leader}' is the primary now (before: {Previous}), says {Source}".</summary>
    public const int LeaderChanged = 2109;
    /// <summary>Information (EfReplicaInterceptor.Topology): "Replica '{Replica}' of cluster '{Cluster}' answers as the primary; it takes no standby reads while it is". Logged once per change of role (a node listed in every role, a promotion); not an outage: a second writable server is event 2010.</summary>
    public const int ReplicaAnswersAsPrimary = 2020;

    /// <summary>Information (EfReplicaInterceptor.Topology): "Replica '{Replica}' of cluster '{Cluster}' is now a standby of the primary and in rotation (lag {LagSeconds} s)": a node that answered as the primary joined the rotation (a switchover's old primary rebuilt as a standby).</summary>
    public const int ReplicaNowStandby = 2021;

    /// <summary>Information (EfReplicaInterceptor.Topology): "Cluster '{Cluster}': reloaded the database types of {Host} for the primary's connections, now that it is writable ({Why})": the types (an application's enums) had been loaded from that host while it was a standby, or before the primary changed, and may lack one created since (docs/operations-and-ha.md).</summary>
    public const int PrimaryTypesReloaded = 2022;

    /// <summary>Information (EfReplicaInterceptor.Clusters): "Created the cluster of tenant '{Tenant}' from {Source}".</summary>
    public const int TenantClusterCreated = 3000;

    /// <summary>Information (EfReplicaInterceptor.Clusters): "Closed the cluster of tenant '{Tenant}' after {IdleSeconds:0.###} s without use; its server connections are closed".</summary>
    public const int TenantClusterEvicted = 3001;

    /// <summary>Warning (EfReplicaInterceptor.Clusters): "Refused a DbContext for tenant '{Tenant}': {Why}".</summary>
    public const int TenantRejected = 3002;

    /// <summary>Error (EfReplicaInterceptor.Clusters): "Stopped a command of tenant '{Tenant}' before it was sent: {Why}".</summary>
    public const int TenantIsolationViolation = 3003;

    /// <summary>Warning (EfReplicaInterceptor.Clusters): "Closing the cluster of tenant '{Tenant}' failed".</summary>
    public const int TenantClusterDisposeFailed = 3004;
}
