using System.Diagnostics.Metrics;
using EfReplicaInterceptor;
using EfReplicaInterceptor.Configuration;
using EfReplicaInterceptor.Health;
using EfReplicaInterceptor.Hosting;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers EfReplicaInterceptor with dependency injection.</summary>
public static class EfReplicaServiceCollectionExtensions
{
    /// <summary>
    /// Registers an <see cref="EfReplicaCluster"/> configured from <paramref name="configuration"/> (by convention the
    /// <c>"EfReplica"</c> section). The settings are validated when the host starts: a bad setting stops start-up with a
    /// message naming it. When the configuration reloads (a JSON file added with <c>reloadOnChange: true</c>), the replica
    /// list and the replicas' weights are read again and applied without a restart; a change that fails the same checks is
    /// refused (event 2105) and the running replicas stay; other settings apply at the next start (event 2106). Configuration is strict: a key that is not a setting, a value that cannot be read, a replica equal
    /// to the primary or to another replica and contradictory settings are refused; no message shows a value.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The section holding <see cref="EfReplicaOptions"/>.</param>
    /// <param name="configureDataSource">Applied to the data source builder of the primary and of every replica (for example
    /// <c>b =&gt; b.MapEnum&lt;Mood&gt;("mood")</c>). Default: nothing.</param>
    public static IServiceCollection AddEfReplica(
        this IServiceCollection services,
        IConfiguration configuration,
        Action<NpgsqlDataSourceBuilder>? configureDataSource = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        var path = configuration is IConfigurationSection section ? section.Path : string.Empty;
        // Not OptionsBuilder.Bind: the binder ignores misspelt keys, drops list items it cannot convert and quotes values in
        // its messages. The strict binder binds what can be read; the validator names every key that cannot, never its value.
        services.AddOptions<EfReplicaOptions>().Configure(options => StrictConfiguration.Bind(configuration, options, StrictConfiguration.ClusterListKeys));
        services.AddSingleton<IOptionsChangeTokenSource<EfReplicaOptions>>(new ConfigurationChangeTokenSource<EfReplicaOptions>(Microsoft.Extensions.Options.Options.DefaultName, configuration));
        return AddCore(services, path, configuration, configureDataSource);
    }

    /// <summary>Registers an <see cref="EfReplicaCluster"/> configured in code. Validated when the host starts.</summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the <see cref="EfReplicaOptions"/>.</param>
    /// <param name="configureDataSource">Applied to the data source builder of the primary and of every replica. Default: nothing.</param>
    public static IServiceCollection AddEfReplica(
        this IServiceCollection services,
        Action<EfReplicaOptions> configure,
        Action<NpgsqlDataSourceBuilder>? configureDataSource = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<EfReplicaOptions>().Configure(configure);
        return AddCore(services, EfReplicaOptions.DefaultSectionName, configuration: null, configureDataSource);
    }

    private static IServiceCollection AddCore(IServiceCollection services, string sectionPath, IConfiguration? configuration, Action<NpgsqlDataSourceBuilder>? configureDataSource)
    {
        services.AddOptions<EfReplicaOptions>().ValidateOnStart();
        services.AddSingleton<IValidateOptions<EfReplicaOptions>>(new EfReplicaOptionsValidator(sectionPath, configuration));
        services.AddSingleton(sp => EfReplicaCluster.Create(
            EfReplicaCluster.DefaultName,
            sp.GetRequiredService<IOptions<EfReplicaOptions>>().Value,
            sectionPath,
            sp.GetService<ILoggerFactory>(),
            configureDataSource,
            sp.GetService<IMeterFactory>(),
            sp.GetService<TimeProvider>() ?? TimeProvider.System,
            configuration is null ? null : new LiveConfiguration(configuration.GetReloadToken, () => LiveSettings.ReadSection(configuration, sectionPath))));
        services.AddHostedService<EfReplicaHostedService>();
        return services;
    }

    /// <summary>
    /// Adds a health check named <paramref name="name"/> that reports <c>Unhealthy</c> when the primary does not answer
    /// as a primary and <c>Degraded</c> while any replica is out of rotation, from the replica monitor's latest view
    /// (it queries no server itself). Tag it for readiness probes.
    /// </summary>
    public static IHealthChecksBuilder AddEfReplica(this IHealthChecksBuilder builder, string name = "efreplica", IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(
            name,
            sp => new EfReplicaHealthCheck(sp.GetRequiredService<EfReplicaCluster>()),
            failureStatus: null,
            tags));
    }
}
