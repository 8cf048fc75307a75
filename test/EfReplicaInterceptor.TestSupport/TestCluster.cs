using EfReplicaInterceptor.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EfReplicaInterceptor.TestSupport;

/// <summary>How the DbContext is pointed at the primary.</summary>
public enum ConnectionMode
{
    /// <summary><c>UseNpgsql(connectionString)</c>.</summary>
    ConnectionString,

    /// <summary><c>UseNpgsql(cluster.PrimaryDataSource).UseEfReplicaRouting(cluster)</c>: the recommended wiring.</summary>
    DataSource,

    /// <summary><c>UseNpgsql(cluster.PrimaryDataSource).AddInterceptors(cluster.Interceptors)</c>: the interceptors alone.</summary>
    InterceptorsOnly,
}

/// <summary>
/// An <see cref="EfReplicaCluster"/> over a server set (<see cref="ShopServers"/>), its routing events recorded, and the
/// <see cref="ShopContext"/> options pointed at it: the wiring the integration tests and the benchmarks share.
/// </summary>
public sealed class TestCluster : IAsyncDisposable
{
    /// <summary>The connection pool size of every data source unless a caller asks otherwise.</summary>
    public const int DefaultMaxPoolSize = 20;

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
    /// <param name="set">The servers; the cluster's primary is <c>set.Primary</c>.</param>
    /// <param name="configure">Changes the options after they are built from the servers (intervals, modes, …).</param>
    /// <param name="withReplicas">Every standby of the set as a replica (named as the server); false for a primary-only cluster.</param>
    /// <param name="maxPoolSize">The <c>Maximum Pool Size</c> of every connection string; null leaves Npgsql's default (100).</param>
    /// <param name="recordEvents">
    /// Whether the cluster logs into <see cref="Recorder"/> (every level from Debug). False creates the cluster without a logger
    /// factory, as an application that does not log would, so a measurement does not pay for logging; the recorder stays empty.
    /// </param>
    public static async Task<TestCluster> CreateAsync(
        PostgresReplicaSet set,
        Action<EfReplicaOptions>? configure = null,
        bool withReplicas = true,
        int? maxPoolSize = DefaultMaxPoolSize,
        bool recordEvents = true)
    {
        var options = Options(set, withReplicas, maxPoolSize);
        configure?.Invoke(options);
        var recorder = new RoutingRecorder();
        var loggerFactory = recorder.CreateFactory();
        var cluster = EfReplicaCluster.Create(options, recordEvents ? loggerFactory : null, MapTypes);
        try
        {
            await cluster.RefreshHealthAsync();
        }
        catch
        {
            await cluster.DisposeAsync();
            loggerFactory.Dispose();
            recorder.Dispose();
            throw;
        }

        return new TestCluster(cluster, recorder, loggerFactory, options.Primary!);
    }

    /// <summary>The options of a cluster over <paramref name="set"/> (see <see cref="CreateAsync"/> for the parameters).</summary>
    public static EfReplicaOptions Options(PostgresReplicaSet set, bool withReplicas = true, int? maxPoolSize = DefaultMaxPoolSize)
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

    /// <summary><paramref name="connectionString"/> with <c>Maximum Pool Size</c> set; unchanged when <paramref name="maxPoolSize"/> is null.</summary>
    public static string WithPool(string connectionString, int? maxPoolSize)
        => maxPoolSize is { } size ? new NpgsqlConnectionStringBuilder(connectionString) { MaxPoolSize = size }.ConnectionString : connectionString;

    public DbContextOptions<ShopContext> ContextOptions(ConnectionMode mode = ConnectionMode.DataSource)
    {
        var builder = new DbContextOptionsBuilder<ShopContext>();
        Configure(builder, mode);
        return builder.Options;
    }

    public void Configure(DbContextOptionsBuilder builder, ConnectionMode mode = ConnectionMode.DataSource)
    {
        if (mode != ConnectionMode.ConnectionString)
        {
            builder.UseNpgsql(Cluster.PrimaryDataSource, npgsql => npgsql.MapEnum<Mood>("mood"));
        }
        else
        {
            builder.UseNpgsql(PrimaryConnectionString, npgsql => npgsql.MapEnum<Mood>("mood"));
        }

        if (mode == ConnectionMode.InterceptorsOnly)
        {
            builder.AddInterceptors(Cluster.Interceptors);
        }
        else
        {
            builder.UseEfReplicaRouting(Cluster);
        }

        builder.ConfigureWarnings(warnings => warnings.Ignore(CoreEventId.ManyServiceProvidersCreatedWarning));
    }

    public ShopContext NewContext(ConnectionMode mode = ConnectionMode.DataSource) => new(ContextOptions(mode));

    public async ValueTask DisposeAsync()
    {
        await Cluster.DisposeAsync();
        _loggerFactory.Dispose();
        Recorder.Dispose();
    }
}
