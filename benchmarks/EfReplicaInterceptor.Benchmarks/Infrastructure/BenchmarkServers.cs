using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Npgsql;

namespace EfReplicaInterceptor.Benchmarks.Infrastructure;

/// <summary>The DbContext configurations the benchmarks compare.</summary>
internal enum Route
{
    /// <summary>Plain EF Core on the primary, no interceptor.</summary>
    PlainPrimary,

    /// <summary>Plain EF Core pointed straight at the standby, no interceptor.</summary>
    PlainStandby,

    /// <summary>Through the library, a cluster without replicas: reads are decided <c>no-replica</c> and end on the primary.</summary>
    LibraryPrimaryOnly,

    /// <summary>Through the library, the standby as replica: reads run on the standby (<c>SuppressWithResult</c>), writes on the primary.</summary>
    LibraryWithReplica,
}

/// <summary>
/// A real PostgreSQL primary and streaming hot standby on loopback, seeded with <see cref="ShopDbContext.Schema"/>, plus the
/// data sources and clusters every <see cref="Route"/> needs (all of them are built in every process, so every case runs in
/// the same surroundings). Every configuration is made the same way: one <see cref="DbContextOptions{TContext}"/>, a new
/// context per operation, <c>UseNpgsql(NpgsqlDataSource)</c> on a data source that maps the model's types
/// (<see cref="TestCluster.MapTypes"/>, the clusters' own and the plain ones alike); they differ only in the server EF's
/// connection points at and in the interceptors added.
/// </summary>
/// <remarks>
/// A process must use one options instance only, the one it measures: EF Core 10 allocates about 6 KB more per new context
/// for every <see cref="DbContextOptions"/> instance except the first one a process uses (measured here with two identical
/// plain configurations on the same data source: 41.1 KB against 47.4 KB per single-row query). BenchmarkDotNet runs each
/// case in its own process, so a benchmark class picks its case's configuration in a <c>[GlobalSetup(Targets = …)]</c> with
/// <see cref="Use(Route)"/> and touches no other.
/// </remarks>
internal sealed class BenchmarkServers : IAsyncDisposable
{
    /// <summary>
    /// The clusters' health-check interval. The monitor's background probe allocates on its own thread once per interval;
    /// MemoryDiagnoser counts every thread, so at the default (1 s) that application-wide cost would be smeared over the
    /// operations of the measured iteration as noise. Routing does not depend on it: a replica stays admitted until the next
    /// probe says otherwise, and <see cref="VerifyRouting"/> checks after the run that it still was.
    /// </summary>
    private static readonly TimeSpan QuietHealthCheckInterval = TimeSpan.FromMinutes(30);

    private readonly TestCluster _primaryOnly;
    private readonly TestCluster _withReplica;
    private DbContextOptions<ShopContext>? _options;
    private PostgresServer? _expectedServer;
    private string _name = "";

    private BenchmarkServers(PostgresReplicaSet set, NpgsqlDataSource primary, NpgsqlDataSource standby, TestCluster primaryOnly, TestCluster withReplica)
    {
        Set = set;
        PrimaryDataSource = primary;
        StandbyDataSource = standby;
        _primaryOnly = primaryOnly;
        _withReplica = withReplica;
    }

    public PostgresReplicaSet Set { get; }

    /// <summary>A data source of the primary for plain EF (not the cluster's).</summary>
    public NpgsqlDataSource PrimaryDataSource { get; }

    /// <summary>A data source of the standby for plain EF (not the cluster's).</summary>
    public NpgsqlDataSource StandbyDataSource { get; }

    /// <summary>The library's cluster without replicas.</summary>
    public EfReplicaCluster PrimaryOnlyCluster => _primaryOnly.Cluster;

    /// <summary>The library's cluster with the standby as its replica.</summary>
    public EfReplicaCluster ReplicaCluster => _withReplica.Cluster;

    /// <summary>
    /// Starts the servers, seeds them and builds the data sources and clusters (the clusters' first health round done). The
    /// clusters log nowhere and keep Npgsql's default pool size, as an application's would.
    /// </summary>
    public static async Task<BenchmarkServers> StartAsync()
    {
        var set = await ShopServers.StartAsync(standbys: 1);
        TestCluster? primaryOnly = null;
        try
        {
            primaryOnly = await TestCluster.CreateAsync(set, Quiet, withReplicas: false, maxPoolSize: null, recordEvents: false);
            var withReplica = await TestCluster.CreateAsync(set, Quiet, maxPoolSize: null, recordEvents: false);
            return new BenchmarkServers(set, PlainDataSource(set.Primary), PlainDataSource(set.Standby), primaryOnly, withReplica);
        }
        catch
        {
            if (primaryOnly is not null)
            {
                await primaryOnly.DisposeAsync();
            }

            await set.DisposeAsync();
            throw;
        }

        static void Quiet(EfReplicaOptions options) => options.HealthCheckInterval = QuietHealthCheckInterval;
    }

    /// <summary>Starts the servers and selects <paramref name="route"/>: what a <c>[GlobalSetup]</c> calls.</summary>
    public static BenchmarkServers StartFor(Route route)
    {
        // BenchmarkDotNet 0.14 runs a sync GlobalSetup for sync benchmarks; this is the one place that blocks.
        var servers = StartAsync().GetAwaiter().GetResult();
        servers.Use(route);
        return servers;
    }

    /// <summary>Builds the options of <paramref name="route"/>, checks where a read runs with them, and returns them.</summary>
    public DbContextOptions<ShopContext> Use(Route route) => route switch
    {
        Route.PlainPrimary => Use(PrimaryDataSource, interceptors: null, Set.Primary, nameof(Route.PlainPrimary)),
        Route.PlainStandby => Use(StandbyDataSource, interceptors: null, Set.Standby, nameof(Route.PlainStandby)),
        Route.LibraryPrimaryOnly => Use(PrimaryOnlyCluster.PrimaryDataSource, PrimaryOnlyCluster.Interceptors, Set.Primary, nameof(Route.LibraryPrimaryOnly)),
        Route.LibraryWithReplica => Use(ReplicaCluster.PrimaryDataSource, ReplicaCluster.Interceptors, Set.Standby, nameof(Route.LibraryWithReplica)),
        _ => throw new ArgumentOutOfRangeException(nameof(route), route, null),
    };

    /// <summary>
    /// Builds options the way an application does (<c>UseNpgsql(dataSource)</c>, interceptors if any), checks that a plain read
    /// runs on <paramref name="expected"/>, and makes them the ones <see cref="Options"/> returns. Call once per process.
    /// </summary>
    public DbContextOptions<ShopContext> Use(NpgsqlDataSource dataSource, IEnumerable<IInterceptor>? interceptors, PostgresServer expected, string name)
    {
        if (_options is not null)
        {
            throw new InvalidOperationException($"This process already measures {_name}; one options instance per process (see the remarks of {nameof(BenchmarkServers)}).");
        }

        var builder = new DbContextOptionsBuilder<ShopContext>().UseNpgsql(dataSource);
        if (interceptors is not null)
        {
            builder.AddInterceptors(interceptors);
        }

        _options = builder.Options;
        _expectedServer = expected;
        _name = name;
        VerifyRouting();
        return _options;
    }

    /// <summary>The options selected with <see cref="Use(Route)"/>.</summary>
    public DbContextOptions<ShopContext> Options => _options ?? throw new InvalidOperationException("No route selected: call Use in the GlobalSetup.");

    /// <summary>
    /// Fails unless a plain read with the selected options runs on the server it is meant to, as the server reports it
    /// (<c>inet_server_port()</c>): a run that silently measured a fallback to the primary would be worthless.
    /// </summary>
    public void VerifyRouting()
    {
        using var db = new ShopContext(Options);
        var port = db.Database.SqlQueryRaw<int>("SELECT inet_server_port() AS \"Value\"").AsEnumerable().Single();
        if (port != _expectedServer!.Port)
        {
            throw new InvalidOperationException($"{_name}: a read ran on port {port}, expected {_expectedServer.Name} (port {_expectedServer.Port}).");
        }
    }

    /// <summary>Checks the route once more (a replica that left rotation mid-run would have measured the wrong path), then stops everything.</summary>
    public void VerifyAndStop()
    {
        try
        {
            if (_options is not null)
            {
                VerifyRouting();
            }
        }
        finally
        {
            DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    /// <summary>A data source for plain EF on <paramref name="server"/>, with the same type mappings as the clusters' data sources.</summary>
    private static NpgsqlDataSource PlainDataSource(PostgresServer server)
    {
        var builder = new NpgsqlDataSourceBuilder(server.ConnectionString);
        TestCluster.MapTypes(builder);
        return builder.Build();
    }

    public async ValueTask DisposeAsync()
    {
        await _withReplica.DisposeAsync();
        await _primaryOnly.DisposeAsync();
        await StandbyDataSource.DisposeAsync();
        await PrimaryDataSource.DisposeAsync();
        await Set.DisposeAsync();
    }
}
