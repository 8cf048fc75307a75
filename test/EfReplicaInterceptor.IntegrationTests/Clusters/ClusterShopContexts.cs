using EfReplicaInterceptor.IntegrationTests.Support;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Clusters;

/// <summary>The <see cref="ShopContext"/> model (table <c>people</c>, server-side port functions) for several DbContext types.</summary>
public abstract class ClusterShopContext(DbContextOptions options) : DbContext(options)
{
    public DbSet<Person> People => Set<Person>();

    public IQueryable<ServerSide> WhereAmI()
        => People.OrderBy(p => p.Id).Select(p => new ServerSide(ShopContext.ServerPort(), ShopContext.InRecovery())).Take(1);

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.HasDbFunction(typeof(ShopContext).GetMethod(nameof(ShopContext.ServerPort))!).HasName("inet_server_port").IsBuiltIn();
        modelBuilder.HasDbFunction(typeof(ShopContext).GetMethod(nameof(ShopContext.InRecovery))!).HasName("pg_is_in_recovery").IsBuiltIn();
        modelBuilder.Entity<Person>(person =>
        {
            person.ToTable("people");
            person.Property(p => p.Id).HasColumnName("id");
            person.Property(p => p.Name).HasColumnName("name");
            person.Property(p => p.Mood).HasColumnName("mood");
            person.Property(p => p.WrittenOnPort).HasColumnName("written_on_port").HasDefaultValueSql("inet_server_port()");
            person.Property(p => p.TouchedOnPort).HasColumnName("touched_on_port");
        });
    }
}

/// <summary>Bound to the named cluster "orders".</summary>
public sealed class OrdersContext(DbContextOptions<OrdersContext> options) : ClusterShopContext(options);

/// <summary>Bound to the named cluster "analytics".</summary>
public sealed class AnalyticsContext(DbContextOptions<AnalyticsContext> options) : ClusterShopContext(options);

/// <summary>Bound per lease to the tenant of the scope.</summary>
public sealed class TenantContext(DbContextOptions<TenantContext> options) : ClusterShopContext(options);

/// <summary>The tenant of the current test scope, set by the test: what a host-name or claim resolver would return.</summary>
public sealed class ScopeTenant : IEfReplicaTenantResolver
{
    public string? Id { get; set; }

    public string? ResolveTenant() => Id;
}
