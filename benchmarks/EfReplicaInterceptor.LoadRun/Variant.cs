using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Npgsql;

namespace EfReplicaInterceptor.LoadRun;

/// <summary>
/// One way of wiring EF Core to the servers. Contexts come from EF's own pooled factory (what AddDbContextPool uses), the
/// same for every variant.
/// </summary>
internal sealed class Variant : IAsyncDisposable
{
    private readonly IDbContextFactory<ShopContext> _writes;
    private readonly IDbContextFactory<ShopContext> _reads;
    private readonly Func<ValueTask> _dispose;

    private Variant(string key, string title, IDbContextFactory<ShopContext> writes, IDbContextFactory<ShopContext> reads, Func<ValueTask> dispose)
    {
        Key = key;
        Title = title;
        _writes = writes;
        _reads = reads;
        _dispose = dispose;
    }

    public string Key { get; }

    public string Title { get; }

    /// <summary>True when reads (also reads right after the worker's own write) use a second context.</summary>
    public bool SplitsReads => !ReferenceEquals(_writes, _reads);

    public static IReadOnlyList<string> AllKeys { get; } = ["primary", "split", "pgpool", "library"];

    public ShopContext CreateWriteContext() => _writes.CreateDbContext();

    public ShopContext CreateReadContext() => _reads.CreateDbContext();

    /// <summary>1. Plain EF Core on the primary: every command on the primary.</summary>
    public static Variant PrimaryOnly(string primaryConnectionString)
    {
        var dataSource = NpgsqlDataSource.Create(primaryConnectionString);
        var factory = Pooled(options => options.UseNpgsql(dataSource));
        return new Variant("primary", "primary only (plain EF Core)", factory, factory, dataSource.DisposeAsync);
    }

    /// <summary>
    /// 2. Hand-split: writes through a primary context, reads (also the read-back of the worker's own write) through a second
    /// context on a multi-host data source preferring the standby.
    /// </summary>
    public static Variant HandSplit(string primaryConnectionString, string multiHostConnectionString)
    {
        var primary = NpgsqlDataSource.Create(primaryConnectionString);
        var readSource = new NpgsqlDataSourceBuilder(multiHostConnectionString).BuildMultiHost().WithTargetSession(TargetSessionAttributes.PreferStandby);
        var writes = Pooled(options => options.UseNpgsql(primary));
        var reads = Pooled(options => options.UseNpgsql(readSource));
        return new Variant("split", "hand-split read/write contexts (PreferStandby)", writes, reads, async () =>
        {
            await readSource.DisposeAsync();
            await primary.DisposeAsync();
        });
    }

    /// <summary>3. pgpool-II in streaming-replication mode with load balancing: EF connects to pgpool.</summary>
    public static Variant Pgpool(string pgpoolConnectionString)
    {
        var dataSource = NpgsqlDataSource.Create(pgpoolConnectionString);
        var factory = Pooled(options => options.UseNpgsql(dataSource));
        return new Variant("pgpool", "pgpool-II load balancing", factory, factory, dataSource.DisposeAsync);
    }

    /// <summary>4. This library: one context, EfReplicaCluster with the standby as replica, default settings.</summary>
    public static async Task<Variant> LibraryAsync(string primaryConnectionString, string standbyConnectionString, CancellationToken ct)
    {
        var options = new EfReplicaOptions { Primary = primaryConnectionString };
        options.Replicas.Add(new ReplicaEndpointOptions { Name = "standby", ConnectionString = standbyConnectionString });
        var cluster = EfReplicaCluster.Create(options);
        try
        {
            await cluster.RefreshHealthAsync(ct);
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }

        var factory = Pooled(builder => builder.UseEfReplicaCluster(cluster));
        return new Variant("library", "EfReplicaInterceptor (WAL-position read-your-writes)", factory, factory, cluster.DisposeAsync);
    }

    public ValueTask DisposeAsync() => _dispose();

    private static PooledDbContextFactory<ShopContext> Pooled(Action<DbContextOptionsBuilder<ShopContext>> configure)
    {
        var builder = new DbContextOptionsBuilder<ShopContext>();
        configure(builder);
        return new PooledDbContextFactory<ShopContext>(builder.Options, poolSize: 128);
    }
}
