using Microsoft.Extensions.Logging;

namespace EfReplicaInterceptor.Clusters;

/// <summary>
/// Log events of several clusters in one application (event ids 3000–3099, category
/// <c>EfReplicaInterceptor.Clusters</c>). They name a cluster by its configured key or tenant id, never by a connection string.
/// </summary>
internal static partial class ClusterLog
{
    /// <summary>Category of tenant clusters.</summary>
    public const string Category = "EfReplicaInterceptor.Clusters";

    [LoggerMessage(EventId = 3000, EventName = "TenantClusterCreated", Level = LogLevel.Information,
        Message = "Created the cluster of tenant '{Tenant}' from {Source}")]
    public static partial void TenantClusterCreated(ILogger logger, string tenant, string source);

    [LoggerMessage(EventId = 3001, EventName = "TenantClusterEvicted", Level = LogLevel.Information,
        Message = "Closed the cluster of tenant '{Tenant}' after {IdleSeconds:0.###} s without use; its server connections are closed")]
    public static partial void TenantClusterEvicted(ILogger logger, string tenant, double idleSeconds);

    [LoggerMessage(EventId = 3002, EventName = "TenantRejected", Level = LogLevel.Warning,
        Message = "Refused a DbContext for tenant '{Tenant}': {Why}")]
    public static partial void TenantRejected(ILogger logger, string tenant, string why);

    [LoggerMessage(EventId = 3003, EventName = "TenantIsolationViolation", Level = LogLevel.Error,
        Message = "Stopped a command of tenant '{Tenant}' before it was sent: {Why}")]
    public static partial void TenantIsolationViolation(ILogger logger, string tenant, string why);

    [LoggerMessage(EventId = 3004, EventName = "TenantClusterDisposeFailed", Level = LogLevel.Warning,
        Message = "Closing the cluster of tenant '{Tenant}' failed")]
    public static partial void TenantClusterDisposeFailed(ILogger logger, Exception exception, string tenant);
}
