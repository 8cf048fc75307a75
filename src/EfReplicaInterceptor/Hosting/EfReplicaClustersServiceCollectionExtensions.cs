using EfReplicaInterceptor.Diagnostics;
using System.Diagnostics.Metrics;
using EfReplicaInterceptor;
using EfReplicaInterceptor.Clusters;
using EfReplicaInterceptor.Configuration;
using EfReplicaInterceptor.Health;
using EfReplicaInterceptor.Hosting;
using EfReplicaInterceptor.Interception;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using Npgsql.EntityFrameworkCore.PostgreSQL.Infrastructure;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Registers several clusters in one application: named clusters bound to DbContext types, and one cluster per tenant.
/// </summary>
/// <remarks>
/// Both read one section (by convention <c>"EfReplica"</c>). Its own settings are the shared defaults; each cluster under
/// <c>Clusters:&lt;name&gt;</c> or <c>Tenants:&lt;id&gt;</c> overrides them with its own. A cluster's servers
/// (<c>Primary</c>, <c>Replicas</c>) are never inherited, and <c>WriteFunctions</c> add up.
/// </remarks>
public static class EfReplicaClustersServiceCollectionExtensions
{
    /// <summary>
    /// Registers every cluster listed under <c>Clusters</c> of <paramref name="configuration"/> as a keyed singleton
    /// <see cref="EfReplicaCluster"/> (key: its name as spelled in configuration), started with the host. Bind a DbContext
    /// type to one with <c>options.UseEfReplicaCluster(sp, "orders")</c> in its registration. The settings are validated when
    /// the host starts: a bad setting stops start-up with a message naming its full path (for example
    /// <c>EfReplica:Clusters:orders:Primary is required</c>, or <c>EfReplica:HealthCheckInterval</c> for a shared default).
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The section holding the shared defaults and <c>Clusters</c>.</param>
    /// <param name="configureDataSource">Applied to the data source builder of every primary and replica of every cluster.
    /// Default: nothing.</param>
    /// <exception cref="InvalidOperationException">A cluster of the same name is already registered.</exception>
    public static IServiceCollection AddEfReplicaClusters(
        this IServiceCollection services,
        IConfiguration configuration,
        Action<NpgsqlDataSourceBuilder>? configureDataSource = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        var listPath = ClusterConfiguration.Child(ClusterConfiguration.PathOf(configuration), ClusterConfiguration.ClustersKey);
        services.AddOptions<ClusterSet>(listPath).Configure(set => set.LoadClusters(configuration)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ClusterSet>, ClusterSetValidator>());

        var names = configuration.GetSection(ClusterConfiguration.ClustersKey).GetChildren().Select(static cluster => cluster.Key).ToArray();
        foreach (var name in names)
        {
            if (services.Any(descriptor => descriptor.IsKeyedService && descriptor.ServiceType == typeof(EfReplicaCluster) && Equals(descriptor.ServiceKey, name)))
            {
                throw new InvalidOperationException($"An EfReplica cluster named '{name}' is already registered; cluster names must be unique in the application.");
            }

            services.AddKeyedSingleton(name, (sp, _) => CreateNamedCluster(sp, listPath, name, configuration, configureDataSource));
        }

        services.AddSingleton<IHostedService>(sp => new EfReplicaClustersHostedService(sp, listPath, names));
        return services;
    }

    /// <summary>
    /// Registers one cluster per tenant: tenants listed under <c>Tenants:&lt;id&gt;</c> of <paramref name="configuration"/>,
    /// and, when the application registers an <see cref="IEfReplicaTenantCatalog"/>, tenants it provides at run time. A
    /// tenant's cluster is created when a DbContext is first leased for it and closed (data sources and monitor disposed)
    /// after <see cref="EfReplicaTenantOptions.IdleTimeout"/> without use. Add tenant DbContext types with
    /// <see cref="AddEfReplicaTenantDbContext{TContext}"/>, and register an <see cref="IEfReplicaTenantResolver"/>.
    /// Validated when the host starts.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The section holding the shared defaults, <c>Tenants</c> and <c>Tenancy</c>.</param>
    /// <param name="configureDataSource">Applied to the data source builder of every primary and replica of every tenant.
    /// Default: nothing.</param>
    /// <param name="configure">Changes <see cref="EfReplicaTenantOptions"/> after binding <c>Tenancy</c>. Default: nothing.</param>
    /// <exception cref="InvalidOperationException">Tenants are already registered (once per application).</exception>
    public static IServiceCollection AddEfReplicaTenants(
        this IServiceCollection services,
        IConfiguration configuration,
        Action<NpgsqlDataSourceBuilder>? configureDataSource = null,
        Action<EfReplicaTenantOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        if (services.Any(static descriptor => descriptor.ServiceType == typeof(TenantClusterCache)))
        {
            throw new InvalidOperationException("EfReplica tenants are already registered; call AddEfReplicaTenants once per application.");
        }

        var listPath = ClusterConfiguration.Child(ClusterConfiguration.PathOf(configuration), ClusterConfiguration.TenantsKey);
        services.AddOptions<ClusterSet>(listPath).Configure(set => set.LoadTenants(configuration, configure)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ClusterSet>, ClusterSetValidator>());
        services.AddSingleton(sp => new TenantClusterCache(
            sp.GetRequiredService<IOptionsMonitor<ClusterSet>>().Get(listPath),
            sp.GetService<IEfReplicaTenantCatalog>(),
            sp.GetService<ILoggerFactory>(),
            configureDataSource,
            sp.GetService<TimeProvider>() ?? TimeProvider.System));
        services.AddSingleton(sp => new TenantRouterResolver(
            (sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger(Log.ClustersCategory)));
        return services;
    }

    /// <summary>
    /// Registers <typeparamref name="TContext"/> as a pooled DbContext whose every lease is bound to the tenant of the scope
    /// that leases it (from the application's <see cref="IEfReplicaTenantResolver"/>): EF's own connection comes from that
    /// tenant's primary data source, and reads are routed to that tenant's replicas. Resolve <typeparamref name="TContext"/>
    /// or <see cref="IDbContextFactory{TContext}"/> from a scope, or use <see cref="EfReplicaTenantDbContextFactory{TContext}"/>
    /// with an explicit tenant id. An unresolved or unknown tenant throws <see cref="EfReplicaTenantException"/> when the
    /// context is leased, before any command runs. Requires <see cref="AddEfReplicaTenants"/>.
    /// </summary>
    /// <typeparam name="TContext">The DbContext type; it needs a constructor taking <c>DbContextOptions&lt;TContext&gt;</c>.</typeparam>
    /// <param name="services">The service collection.</param>
    /// <param name="npgsqlOptionsAction">Npgsql settings of the context, for example <c>npgsql =&gt; npgsql.MapEnum&lt;Mood&gt;("mood")</c>.
    /// No connection string: the tenant's primary provides the connection. Default: none.</param>
    /// <param name="optionsAction">Further DbContext settings (logging, more interceptors). Do not set a connection here. Default: none.</param>
    /// <param name="poolSize">The most contexts the pool keeps. Default: 1024, as EF's own pools.</param>
    public static IServiceCollection AddEfReplicaTenantDbContext<TContext>(
        this IServiceCollection services,
        Action<NpgsqlDbContextOptionsBuilder>? npgsqlOptionsAction = null,
        Action<IServiceProvider, DbContextOptionsBuilder>? optionsAction = null,
        int poolSize = 1024)
        where TContext : DbContext
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentOutOfRangeException.ThrowIfLessThan(poolSize, 1);
        services.AddSingleton(sp =>
        {
            var tenants = sp.GetService<TenantClusterCache>()
                ?? throw new InvalidOperationException($"Call services.AddEfReplicaTenants(...) before resolving {typeof(TContext).Name}: it provides the tenants' clusters.");
            var routers = sp.GetRequiredService<TenantRouterResolver>();
            var builder = new DbContextOptionsBuilder<TContext>();
            builder.UseApplicationServiceProvider(sp);
            builder.UseNpgsql(npgsqlOptionsAction);
            optionsAction?.Invoke(sp, builder);
            builder.AddInterceptors(EfReplicaCluster.CreateInterceptors(routers));
            ((IDbContextOptionsBuilderInfrastructure)builder).AddOrUpdateExtension(new EfReplicaOptionsExtension());
            return new EfReplicaTenantDbContextFactory<TContext>(builder.Options, poolSize, tenants, routers);
        });
        // The lease holder is resolved (and so disposed) before the context: the scope disposes the context first, then the
        // holder ends the lease, also when EF's pool discarded the context without resetting it.
        services.AddScoped(static sp => sp.GetRequiredService<EfReplicaTenantDbContextFactory<TContext>>().LeaseForScope(sp));
        services.AddScoped(static sp => sp.GetRequiredService<TenantScopedLease<TContext>>().Context);
        services.AddScoped<IDbContextFactory<TContext>>(static sp => new TenantScopedDbContextFactory<TContext>(sp.GetRequiredService<EfReplicaTenantDbContextFactory<TContext>>(), sp));
        return services;
    }

    /// <summary>
    /// Adds a health check for the named cluster <paramref name="clusterName"/> (registered by
    /// <see cref="AddEfReplicaClusters"/>): <c>Unhealthy</c> when its primary does not answer as a primary, <c>Degraded</c>
    /// while a replica is out of rotation, from its monitor's latest view.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="clusterName">The cluster's name, spelled as in configuration.</param>
    /// <param name="name">The health check's name. Default: <c>efreplica-&lt;clusterName&gt;</c>.</param>
    /// <param name="tags">Tags, for example for readiness probes. Default: none.</param>
    public static IHealthChecksBuilder AddEfReplicaCluster(this IHealthChecksBuilder builder, string clusterName, string? name = null, IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(clusterName);
        return builder.Add(new HealthCheckRegistration(
            name ?? $"efreplica-{clusterName}",
            sp => new EfReplicaHealthCheck(sp.GetRequiredKeyedService<EfReplicaCluster>(clusterName)),
            failureStatus: null,
            tags));
    }

    private static EfReplicaCluster CreateNamedCluster(IServiceProvider sp, string listPath, string name, IConfiguration configuration, Action<NpgsqlDataSourceBuilder>? configureDataSource)
    {
        // Throws OptionsValidationException with every problem when the settings are invalid.
        var settings = sp.GetRequiredService<IOptionsMonitor<ClusterSet>>().Get(listPath);
        if (!settings.Clusters.TryGetValue(name, out var definition))
        {
            throw new InvalidOperationException($"The EfReplica cluster '{name}' is no longer listed under {listPath}.");
        }

        return EfReplicaCluster.Create(
            definition.Name,
            definition.Options,
            definition.Path,
            sp.GetService<ILoggerFactory>(),
            configureDataSource,
            sp.GetService<IMeterFactory>(),
            sp.GetService<TimeProvider>() ?? TimeProvider.System,
            new LiveConfiguration(configuration.GetReloadToken, () => ClusterConfiguration.ReadCluster(configuration, name)));
    }
}
