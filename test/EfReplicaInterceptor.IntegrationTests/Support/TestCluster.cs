using EfReplicaInterceptor.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Support;

/// <summary>How the DbContext is pointed at the primary.</summary>
public enum ConnectionMode
{
    /// <summary><c>UseNpgsql(connectionString)</c>.</summary>
    ConnectionString,

    /// <summary><c>UseNpgsql(cluster.PrimaryDataSource)</c>.</summary>
    DataSource,
}

/// <summary>An <see cref="EfReplicaCluster"/> over a test server set, with its routing events recorded.</summary>
public sealed class TestCluster : IAsyncDisposable
{
    private readonly ILoggerFactory _loggerFactory;

    private TestCluster(EfReplicaCluster cluster, RoutingRecorder recorder, ILoggerFactory loggerFactory, string primaryConnectionString)
    {
        Cluster = cluster;
        Recorder = recorder;
        _loggerFactory = loggerFactory;
        PrimaryConnectionString = primaryConnectionString;
    }

    public EfReplicaCluster Cluster { get; }

    public RoutingRecorder Recorder { get; }

    public string PrimaryConnectionString { get; }

    /// <summary>Builds the cluster and waits for its first health probe round, as the host does at start.</summary>
    public static async Task<TestCluster> CreateAsync(PostgresReplicaSet set, Action<EfReplicaOptions>? configure = null, bool withReplicas = true, int maxPoolSize = 20)
    {
        var options = Options(set, withReplicas, maxPoolSize);
        configure?.Invoke(options);
        var recorder = new RoutingRecorder();
        var loggerFactory = recorder.CreateFactory();
        var cluster = EfReplicaCluster.Create(options, loggerFactory, MapTypes);
        await cluster.RefreshHealthAsync();
        return new TestCluster(cluster, recorder, loggerFactory, options.Primary!);
    }

    public static EfReplicaOptions Options(PostgresReplicaSet set, bool withReplicas = true, int maxPoolSize = 20)
    {
        var options = new EfReplicaOptions { Primary = WithPool(set.Primary.ConnectionString, maxPoolSize) };
        if (withReplicas)
        {
            foreach (var standby in set.Standbys)
            {
                options.Replicas.Add(new ReplicaEndpointOptions { Name = standby.Name, ConnectionString = WithPool(standby.ConnectionString, maxPoolSize) });
            }
        }

        return options;
    }

    /// <summary>What the application maps on every data source (primary and replicas alike).</summary>
    public static void MapTypes(NpgsqlDataSourceBuilder builder) => builder.MapEnum<Mood>("mood");

    public static string WithPool(string connectionString, int maxPoolSize)
        => new NpgsqlConnectionStringBuilder(connectionString) { MaxPoolSize = maxPoolSize }.ConnectionString;

    public DbContextOptions<ShopContext> ContextOptions(ConnectionMode mode = ConnectionMode.DataSource)
    {
        var builder = new DbContextOptionsBuilder<ShopContext>();
        Configure(builder, mode);
        return builder.Options;
    }

    public void Configure(DbContextOptionsBuilder builder, ConnectionMode mode = ConnectionMode.DataSource)
    {
        if (mode == ConnectionMode.DataSource)
        {
            builder.UseNpgsql(Cluster.PrimaryDataSource, npgsql => npgsql.MapEnum<Mood>("mood"));
        }
        else
        {
            builder.UseNpgsql(PrimaryConnectionString, npgsql => npgsql.MapEnum<Mood>("mood"));
        }

        builder.AddInterceptors(Cluster.Interceptors)
            .ConfigureWarnings(warnings => warnings.Ignore(CoreEventId.ManyServiceProvidersCreatedWarning));
    }

    public ShopContext NewContext(ConnectionMode mode = ConnectionMode.DataSource) => new(ContextOptions(mode));

    public async ValueTask DisposeAsync()
    {
        await Cluster.DisposeAsync();
        _loggerFactory.Dispose();
        Recorder.Dispose();
    }
}
