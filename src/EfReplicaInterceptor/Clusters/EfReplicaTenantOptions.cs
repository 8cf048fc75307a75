namespace EfReplicaInterceptor;

/// <summary>
/// How tenant clusters are kept. Bound from <c>EfReplica:Tenancy</c> and validated when the host starts.
/// </summary>
public sealed class EfReplicaTenantOptions
{
    /// <summary>
    /// How long a tenant's cluster may go unused (no DbContext leased for the tenant) before it is closed: its monitor stops
    /// and its data sources are disposed, which closes its pooled server connections. The next lease for the tenant creates
    /// it again. Must be positive. Default: 10 minutes.
    /// </summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(10);
}
