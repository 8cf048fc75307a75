using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Clusters;

/// <summary>Bound to the named cluster "orders".</summary>
public sealed class OrdersContext(DbContextOptions<OrdersContext> options) : ShopDbContext(options);

/// <summary>Bound to the named cluster "analytics".</summary>
public sealed class AnalyticsContext(DbContextOptions<AnalyticsContext> options) : ShopDbContext(options);

/// <summary>Bound per lease to the tenant of the scope.</summary>
public sealed class TenantContext(DbContextOptions<TenantContext> options) : ShopDbContext(options);

/// <summary>The tenant of the current test scope, set by the test: what a host-name or claim resolver would return.</summary>
public sealed class ScopeTenant : IEfReplicaTenantResolver
{
    public string? Id { get; set; }

    public string? ResolveTenant() => Id;
}
