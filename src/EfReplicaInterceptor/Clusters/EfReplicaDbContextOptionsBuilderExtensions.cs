using EfReplicaInterceptor;
using EfReplicaInterceptor.Interception;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Npgsql.EntityFrameworkCore.PostgreSQL.Infrastructure;

namespace Microsoft.EntityFrameworkCore;

/// <summary>Points a DbContext at one <see cref="EfReplicaCluster"/>.</summary>
public static class EfReplicaDbContextOptionsBuilderExtensions
{
    /// <summary>
    /// Uses <paramref name="cluster"/>: EF's connection comes from its primary data source and its interceptors route each
    /// command: <c>UseNpgsql(cluster.PrimaryDataSource, npgsqlOptionsAction).UseEfReplicaRouting(cluster)</c>. EF's primary
    /// connection opens only when a command needs the primary, and a pooled context's routing state is also reset when EF
    /// returns it to the pool.
    /// </summary>
    /// <param name="optionsBuilder">The DbContext options.</param>
    /// <param name="cluster">The cluster.</param>
    /// <param name="npgsqlOptionsAction">Npgsql settings of the context, for example <c>npgsql =&gt; npgsql.MapEnum&lt;Mood&gt;("mood")</c>. Default: none.</param>
    public static DbContextOptionsBuilder UseEfReplicaCluster(
        this DbContextOptionsBuilder optionsBuilder,
        EfReplicaCluster cluster,
        Action<NpgsqlDbContextOptionsBuilder>? npgsqlOptionsAction = null)
    {
        ArgumentNullException.ThrowIfNull(optionsBuilder);
        ArgumentNullException.ThrowIfNull(cluster);
        return optionsBuilder.UseNpgsql(cluster.PrimaryDataSource, npgsqlOptionsAction).UseEfReplicaRouting(cluster);
    }

    /// <summary>
    /// Routes the commands of a context whose Npgsql provider is already configured (<c>UseNpgsql(connectionString)</c>, or
    /// a data source of the application's own) through <paramref name="cluster"/>: adds its interceptors and the library's
    /// EF services. With those services EF's connection to the primary opens only when a command needs the primary, so a
    /// read served by a replica holds no primary connection and works while the primary is down; with the interceptors
    /// alone (<c>AddInterceptors(cluster.Interceptors)</c>) routing is the same, but EF opens its primary connection for
    /// every query.
    /// </summary>
    /// <param name="optionsBuilder">The DbContext options.</param>
    /// <param name="cluster">The cluster.</param>
    public static DbContextOptionsBuilder UseEfReplicaRouting(this DbContextOptionsBuilder optionsBuilder, EfReplicaCluster cluster)
    {
        ArgumentNullException.ThrowIfNull(optionsBuilder);
        ArgumentNullException.ThrowIfNull(cluster);
        optionsBuilder.AddInterceptors(cluster.Interceptors);
        ((IDbContextOptionsBuilderInfrastructure)optionsBuilder).AddOrUpdateExtension(new EfReplicaOptionsExtension());
        return optionsBuilder;
    }

    /// <inheritdoc cref="UseEfReplicaRouting(DbContextOptionsBuilder, EfReplicaCluster)"/>
    public static DbContextOptionsBuilder<TContext> UseEfReplicaRouting<TContext>(this DbContextOptionsBuilder<TContext> optionsBuilder, EfReplicaCluster cluster)
        where TContext : DbContext
        => (DbContextOptionsBuilder<TContext>)((DbContextOptionsBuilder)optionsBuilder).UseEfReplicaRouting(cluster);

    /// <summary>
    /// Uses the cluster named <paramref name="clusterName"/> under <c>EfReplica:Clusters</c> (registered by
    /// <c>services.AddEfReplicaClusters(...)</c>), in one call from a DbContext registration:
    /// <c>services.AddDbContextPool&lt;OrdersContext&gt;((sp, options) =&gt; options.UseEfReplicaCluster(sp, "orders"))</c>.
    /// </summary>
    /// <param name="optionsBuilder">The DbContext options.</param>
    /// <param name="services">The application's services (the <c>sp</c> of the registration callback).</param>
    /// <param name="clusterName">The cluster's name, spelled as in configuration.</param>
    /// <param name="npgsqlOptionsAction">Npgsql settings of the context. Default: none.</param>
    /// <exception cref="InvalidOperationException">No cluster of that name is registered.</exception>
    public static DbContextOptionsBuilder UseEfReplicaCluster(
        this DbContextOptionsBuilder optionsBuilder,
        IServiceProvider services,
        string clusterName,
        Action<NpgsqlDbContextOptionsBuilder>? npgsqlOptionsAction = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrWhiteSpace(clusterName);
        var cluster = services.GetKeyedService<EfReplicaCluster>(clusterName)
            ?? throw new InvalidOperationException($"No EfReplica cluster named '{clusterName}' is registered: list it under EfReplica:Clusters:{clusterName} and call services.AddEfReplicaClusters(...). Names are spelled as in configuration.");
        return optionsBuilder.UseEfReplicaCluster(cluster, npgsqlOptionsAction);
    }

    /// <inheritdoc cref="UseEfReplicaCluster(DbContextOptionsBuilder, EfReplicaCluster, Action{NpgsqlDbContextOptionsBuilder}?)"/>
    public static DbContextOptionsBuilder<TContext> UseEfReplicaCluster<TContext>(
        this DbContextOptionsBuilder<TContext> optionsBuilder,
        EfReplicaCluster cluster,
        Action<NpgsqlDbContextOptionsBuilder>? npgsqlOptionsAction = null)
        where TContext : DbContext
        => (DbContextOptionsBuilder<TContext>)((DbContextOptionsBuilder)optionsBuilder).UseEfReplicaCluster(cluster, npgsqlOptionsAction);

    /// <inheritdoc cref="UseEfReplicaCluster(DbContextOptionsBuilder, IServiceProvider, string, Action{NpgsqlDbContextOptionsBuilder}?)"/>
    public static DbContextOptionsBuilder<TContext> UseEfReplicaCluster<TContext>(
        this DbContextOptionsBuilder<TContext> optionsBuilder,
        IServiceProvider services,
        string clusterName,
        Action<NpgsqlDbContextOptionsBuilder>? npgsqlOptionsAction = null)
        where TContext : DbContext
        => (DbContextOptionsBuilder<TContext>)((DbContextOptionsBuilder)optionsBuilder).UseEfReplicaCluster(services, clusterName, npgsqlOptionsAction);
}
