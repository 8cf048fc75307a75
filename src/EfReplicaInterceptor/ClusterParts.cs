using EfReplicaInterceptor.Configuration;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Topology;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EfReplicaInterceptor;

/// <summary>
/// The one place a cluster's servers are built: every data source (the primary's, each replica's, each host the split-brain
/// detector probes) through the same <see cref="NpgsqlDataSourceBuilder"/> configuration (the application's
/// <c>configureDataSource</c>: type mappings, a password provider, logging), every replica endpoint with the cluster's
/// deadlines, and the topology source the settings name. <see cref="EfReplicaCluster.Create(EfReplicaOptions, ILoggerFactory?, Action{NpgsqlDataSourceBuilder}?)"/>
/// uses it at start-up, and the <see cref="TopologyManager"/> uses the same <see cref="BuildReplica"/> when a replica joins
/// later; a replica that leaves is disposed by <see cref="ReplicaEndpoint.RetireAsync"/>.
/// </summary>
internal sealed class ClusterParts(
    string cluster,
    EfReplicaOptions options,
    ILoggerFactory loggerFactory,
    Action<NpgsqlDataSourceBuilder>? configureDataSource,
    TimeProvider timeProvider)
{
    /// <summary>The deadlines of every server of the cluster.</summary>
    public ServerDeadlines Deadlines { get; } = new(FailoverOptionsValidator.ReadDeadline(options), options.HealthCheckTimeout, timeProvider);

    /// <summary>A data source named <c>cluster:name</c>, configured by the application.</summary>
    public NpgsqlDataSource BuildDataSource(string connectionString, string name) => BuildDataSource(connectionString, name, types: null);

    /// <summary>
    /// The primary's data source: its hosts' types are reloaded when a host is found writable after it was a standby or the
    /// primary changed (<see cref="PrimaryTypeCatalog"/>, which the monitor tells of a new primary).
    /// </summary>
    public (NpgsqlDataSource DataSource, PrimaryTypeCatalog Types) BuildPrimaryDataSource()
    {
        var types = new PrimaryTypeCatalog(cluster, loggerFactory.CreateLogger(Diagnostics.Log.TopologyCategory));
        var dataSource = BuildDataSource(options.Primary!, "primary", types);
        types.DataSourceConnectionString = dataSource.ConnectionString;
        return (dataSource, types);
    }

    private NpgsqlDataSource BuildDataSource(string connectionString, string name, PrimaryTypeCatalog? types)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString) { Name = $"{cluster}:{name}" };
        builder.UseLoggerFactory(loggerFactory);
        types?.Install(builder); // before the application's configuration: an initializer of its own replaces it
        configureDataSource?.Invoke(builder);
        return builder.Build();
    }

    /// <summary>The primary as the library's own operations see it.</summary>
    public WatchedServer BuildPrimary(NpgsqlDataSource dataSource)
        => new("the primary", dataSource, new ServerLiveness(timeProvider), Deadlines);

    /// <summary>A replica's endpoint in <paramref name="slot"/>, with a data source of its own.</summary>
    public ReplicaEndpoint BuildReplica(TopologyMember member, int slot)
    {
        var dataSource = BuildDataSource(member.ConnectionString, member.Name);
        return new ReplicaEndpoint(slot, member.Name, dataSource, timeProvider, options.HealthCheckInterval, Deadlines);
    }

    /// <summary>The split-brain detector, probing each host of a multi-host primary through data sources built here.</summary>
    public SplitBrainDetector BuildSplitBrainDetector() => new(options.Primary, BuildDataSource, Deadlines);

    /// <summary>
    /// The topology source the settings name: Patroni's REST API when <c>Topology:Patroni:Endpoints</c> lists addresses,
    /// else the configured <see cref="EfReplicaOptions.Replicas"/> (read again on change when <paramref name="live"/> is given).
    /// </summary>
    public ITopologySource BuildSource(LiveConfiguration? live, HttpMessageHandler? patroniHandler)
    {
        var patroni = options.Topology?.Patroni;
        if (patroni?.Endpoints is { Count: > 0 } endpoints)
        {
            return new PatroniTopologySource(
                cluster, endpoints, patroni.ConnectionString ?? options.Primary!, options.HealthCheckInterval, options.HealthCheckTimeout, timeProvider, loggerFactory, patroniHandler);
        }

        return new StaticTopologySource(cluster, options, live, loggerFactory);
    }
}
