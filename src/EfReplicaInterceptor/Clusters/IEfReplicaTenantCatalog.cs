namespace EfReplicaInterceptor;

/// <summary>
/// Provides the cluster of a tenant that is not listed under <c>EfReplica:Tenants</c>, at run time (for example from the
/// application's tenant table). Optional; register it as a singleton. It is asked once when a tenant's cluster is created:
/// after that the cluster is cached until it has been idle for <see cref="EfReplicaTenantOptions.IdleTimeout"/>.
/// </summary>
/// <remarks>
/// It is called on the path that leases a DbContext, which EF Core makes synchronous, so it is synchronous too: keep it fast
/// (for example an in-memory copy of the tenant table that the application refreshes in the background).
/// </remarks>
public interface IEfReplicaTenantCatalog
{
    /// <summary>
    /// Fills in the settings of <paramref name="tenantId"/>'s cluster. <paramref name="options"/> arrives holding the shared
    /// defaults of the <c>EfReplica</c> section (every setting except <see cref="EfReplicaOptions.Primary"/> and
    /// <see cref="EfReplicaOptions.Replicas"/>); set at least <see cref="EfReplicaOptions.Primary"/>.
    /// </summary>
    /// <param name="tenantId">The tenant, as the <see cref="IEfReplicaTenantResolver"/> returned it.</param>
    /// <param name="options">The settings to fill in; validated afterwards like configured ones.</param>
    /// <returns><see langword="false"/> when the tenant is unknown: leasing its DbContext then throws
    /// <see cref="EfReplicaTenantException"/> and no command runs.</returns>
    bool TryConfigureTenant(string tenantId, EfReplicaOptions options);
}
