using System.Diagnostics.Metrics;
using EfReplicaInterceptor;
using EfReplicaInterceptor.Clusters;
using EfReplicaInterceptor.Health;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Registers several clusters in one application: named clusters bound to DbContext types.
/// </summary>
/// <remarks>
/// Clusters are read from one section (by convention <c>"EfReplica"</c>). Its own settings are the shared defaults; each
/// cluster under <c>Clusters:&lt;name&gt;</c> overrides them with its own. A cluster's servers (<c>Primary</c>,
/// <c>Replicas</c>) are never inherited, and <c>WriteFunctions</c> add up.
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

            services.AddKeyedSingleton(name, (sp, _) => CreateNamedCluster(sp, listPath, name, configureDataSource));
        }

        services.AddSingleton<IHostedService>(sp => new EfReplicaClustersHostedService(sp, listPath, names));
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

    private static EfReplicaCluster CreateNamedCluster(IServiceProvider sp, string listPath, string name, Action<NpgsqlDataSourceBuilder>? configureDataSource)
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
            sp.GetService<TimeProvider>() ?? TimeProvider.System);
    }
}
