namespace EfReplicaInterceptor.Clusters;

/// <summary>
/// One tenant's slot in the <see cref="TenantClusterCache"/>: its cluster once created, how many DbContext leases hold it,
/// and when the last one let go. Counts and flags change under <see cref="Gate"/>; the cluster and interceptors are set once.
/// </summary>
internal sealed class TenantClusterEntry(TenantClusterCache owner, string tenantId)
{
    public Lock Gate { get; } = new();

    public TenantClusterCache Owner { get; } = owner;

    /// <summary>The tenant id as first resolved (or as configured); the cluster's name in logs and metrics.</summary>
    public string TenantId { get; private set; } = tenantId;

    public EfReplicaCluster Cluster { get; private set; } = null!;

    /// <summary>The server and database of the primary (<see cref="ClusterConfiguration.DatabaseKey"/>).</summary>
    public string? DatabaseKey { get; private set; }

    /// <summary>Leases holding the cluster, bound or about to be (guarded by <see cref="Gate"/>).</summary>
    public int Leases { get; set; }

    /// <summary>The bound leases among them, checked for abandoned ones by the sweep (guarded by <see cref="Gate"/>).</summary>
    public HashSet<TenantLease> Bound { get; } = [];

    /// <summary><see cref="TimeProvider"/> timestamp of the last acquire or release (guarded by <see cref="Gate"/>).</summary>
    public long LastUsed { get; set; }

    /// <summary>Set once the cluster exists.</summary>
    public bool IsCreated { get; private set; }

    /// <summary>Removed from the cache: the cluster is being disposed, or creating it failed (guarded by <see cref="Gate"/>).</summary>
    public bool IsRemoved { get; set; }

    public void SetCluster(string tenantId, EfReplicaCluster cluster, string? databaseKey)
    {
        TenantId = tenantId;
        DatabaseKey = databaseKey;
        Cluster = cluster;
        IsCreated = true;
    }
}
