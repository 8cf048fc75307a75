namespace EfReplicaInterceptor;

/// <summary>
/// A tenant DbContext could not be given, or could not keep, a tenant's servers: no tenant was resolved, the tenant is
/// unknown, or the context's connection is no longer the one bound to its tenant. Thrown before anything is sent to a server.
/// </summary>
public sealed class EfReplicaTenantException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public EfReplicaTenantException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public EfReplicaTenantException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the exception that caused it.</summary>
    public EfReplicaTenantException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    internal EfReplicaTenantException(string? tenantId, string message)
        : base(message)
    {
        TenantId = tenantId;
    }

    /// <summary>The tenant concerned, or <see langword="null"/> when none was resolved.</summary>
    public string? TenantId { get; }

    internal static EfReplicaTenantException NotResolved()
        => new(null, $"No tenant was resolved for this scope ({nameof(IEfReplicaTenantResolver)} returned none). Nothing was sent to any server.");

    internal static EfReplicaTenantException Unknown(string tenantId, string configuredPath)
        => new(tenantId, $"Tenant '{tenantId}' is unknown: it is not configured ({configuredPath}) and no {nameof(IEfReplicaTenantCatalog)} knows it. Nothing was sent to any server.");

    internal static EfReplicaTenantException NotBound()
        => new(null, "This DbContext lease is not bound to a tenant. Lease tenant contexts from the scope (the DbContext or IDbContextFactory from dependency injection) "
            + "or from EfReplicaTenantDbContextFactory<TContext>.CreateDbContext(tenantId). Nothing was sent to any server.");

    internal static EfReplicaTenantException ConnectionChanged(string tenantId)
        => new(tenantId, $"The connection of this DbContext is no longer the one bound to tenant '{tenantId}' for this lease (Database.SetDbConnection or "
            + "SetConnectionString on a tenant context is not supported). Nothing was sent, so that no command can reach another tenant's servers.");

    internal static EfReplicaTenantException SharedDatabase(string tenantId, string otherTenantId)
        => new(tenantId, $"Tenant '{tenantId}' has the same primary server and database as tenant '{otherTenantId}'; tenants must not share a database. Nothing was sent to any server.");
}
