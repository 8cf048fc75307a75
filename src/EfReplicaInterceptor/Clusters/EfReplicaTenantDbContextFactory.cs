using EfReplicaInterceptor.Clusters;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace EfReplicaInterceptor;

/// <summary>
/// Leases pooled <typeparamref name="TContext"/> instances bound to one tenant: every command of the context, EF's own
/// connection included, reaches only that tenant's primary and replicas. Registered by
/// <c>services.AddEfReplicaTenantDbContext&lt;TContext&gt;()</c>, which also makes <typeparamref name="TContext"/> and
/// <see cref="IDbContextFactory{TContext}"/> available per scope for the scope's tenant; use this class directly where there
/// is no tenant scope, for example a background job that visits every tenant.
/// </summary>
/// <typeparam name="TContext">The DbContext type.</typeparam>
public sealed class EfReplicaTenantDbContextFactory<TContext>
    where TContext : DbContext
{
    private readonly PooledDbContextFactory<TContext> _pool;
    private readonly TenantClusterCache _tenants;
    private readonly TenantRouterResolver _routers;

    internal EfReplicaTenantDbContextFactory(DbContextOptions<TContext> options, int poolSize, TenantClusterCache tenants, TenantRouterResolver routers)
    {
        _pool = new PooledDbContextFactory<TContext>(options, poolSize);
        _tenants = tenants;
        _routers = routers;
    }

    /// <summary>
    /// Leases a context for <paramref name="tenantId"/>, creating the tenant's cluster if it is not open. Dispose the context
    /// to return it to the pool; the tenant's cluster stays open while a context leased for it is in use. (A context that the
    /// pool discards on return because it is full, or that is never disposed, lets the cluster go once it is garbage collected.)
    /// </summary>
    /// <param name="tenantId">The tenant (compared ignoring case).</param>
    /// <exception cref="EfReplicaTenantException">The tenant id is empty, or the tenant is unknown (configured nowhere and
    /// unknown to the catalogue), or shares another tenant's database. Nothing was sent to any server.</exception>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException">The settings the catalogue gave are invalid.</exception>
    public TContext CreateDbContext(string tenantId) => Lease(tenantId, out _);

    internal TContext Lease(string? tenantId, out TenantLease lease)
    {
        var entry = _tenants.Acquire(tenantId);
        TContext context;
        try
        {
            context = _pool.CreateDbContext();
        }
        catch
        {
            _tenants.Release(entry, lease: null);
            throw;
        }

        try
        {
            lease = _routers.Bind(context, entry);
        }
        catch
        {
            context.Dispose();
            throw;
        }

        return context;
    }

    /// <summary>A context for the scope's tenant whose lease also ends when the scope does (see <see cref="TenantScopedLease{TContext}"/>).</summary>
    internal TenantScopedLease<TContext> LeaseForScope(IServiceProvider scope)
    {
        var context = Lease(TenantResolution.Resolve(scope), out var lease);
        return new TenantScopedLease<TContext>(context, lease);
    }

    /// <summary>Leases a context without binding it to a tenant: only for tests of the isolation guard.</summary>
    internal TContext LeaseUnbound() => _pool.CreateDbContext();
}

/// <summary>The scope's <see cref="IDbContextFactory{TContext}"/>: each context is leased for the tenant the scope resolves.</summary>
internal sealed class TenantScopedDbContextFactory<TContext>(EfReplicaTenantDbContextFactory<TContext> factory, IServiceProvider scope) : IDbContextFactory<TContext>
    where TContext : DbContext
{
    public TContext CreateDbContext() => factory.Lease(TenantResolution.Resolve(scope), out _);
}

/// <summary>Asks the application's <see cref="IEfReplicaTenantResolver"/> for the scope's tenant.</summary>
internal static class TenantResolution
{
    public static string? Resolve(IServiceProvider scope)
    {
        var resolver = scope.GetService<IEfReplicaTenantResolver>()
            ?? throw new InvalidOperationException($"No {nameof(IEfReplicaTenantResolver)} is registered: register one (usually scoped) that says which tenant the current request is for.");
        return resolver.ResolveTenant();
    }
}
