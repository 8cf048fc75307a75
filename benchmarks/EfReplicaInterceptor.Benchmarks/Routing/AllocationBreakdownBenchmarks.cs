using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using EfReplicaInterceptor.Benchmarks.Infrastructure;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace EfReplicaInterceptor.Benchmarks.Routing;

/// <summary>
/// Where the library's extra bytes per query go: the single-row query of <see cref="QueryOverheadBenchmarks"/> (sync, new
/// context per operation) on a ladder of configurations, each adding one piece, so that the <c>Extra Alloc</c> differences
/// between rungs attribute the cost.
/// <list type="bullet">
/// <item><c>Primary</c> (the read ends on the primary): any command interceptor; plus any connection interceptor (the library
/// registers both, and transaction and SaveChanges interceptors that a plain read does not wake); a command interceptor that
/// reads <c>context.Database.CurrentTransaction</c> as the router does, and one that reads the same through the context's
/// transaction manager; a minimal interceptor that only moves the read to a connection of its own on the primary (what the
/// library does with a read when there is no replica); the library with no replica.</item>
/// <item><c>Replica</c> (the read ends on the standby): the minimal move to the standby; the library with the standby as
/// replica.</item>
/// </list>
/// </summary>
/// <remarks>Each rung's configuration is chosen by the <c>[GlobalSetup]</c> that targets it (one options instance per process, see <see cref="BenchmarkServers"/>).</remarks>
[MemoryDiagnoser]
[Config(typeof(FewMinutesConfig))]
// Many operations per iteration, few iterations: the rungs differ by a few hundred bytes, latency is not the point here.
[InvocationCount(1024)]
[IterationCount(3)]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class AllocationBreakdownBenchmarks
{
    private const string Primary = "Primary";
    private const string Replica = "Replica";

    private readonly int _id = 421;
    private BenchmarkServers _servers = null!;
    private DbContextOptions<ShopContext> _options = null!;

    [GlobalSetup(Target = nameof(PlainEfPrimary))]
    public void SetupPlainEfPrimary() => Setup(servers => servers.Use(Route.PlainPrimary));

    [GlobalSetup(Target = nameof(AnyCommandInterceptor))]
    public void SetupAnyCommandInterceptor() => Setup(servers => OnPrimary(servers, new NoOpCommandInterceptor()));

    [GlobalSetup(Target = nameof(AnyCommandAndConnectionInterceptor))]
    public void SetupAnyCommandAndConnectionInterceptor() => Setup(servers => OnPrimary(servers, new NoOpCommandInterceptor(), new NoOpConnectionInterceptor()));

    [GlobalSetup(Target = nameof(DatabaseFacadeCurrentTransaction))]
    public void SetupDatabaseFacadeCurrentTransaction() => Setup(servers => OnPrimary(servers, new DatabaseFacadeTransactionProbe()));

    [GlobalSetup(Target = nameof(TransactionManagerCurrentTransaction))]
    public void SetupTransactionManagerCurrentTransaction() => Setup(servers => OnPrimary(servers, new TransactionManagerProbe()));

    [GlobalSetup(Target = nameof(MoveReadOnlyPrimary))]
    public void SetupMoveReadOnlyPrimary() => Setup(servers => OnPrimary(servers, new MoveReadsInterceptor(servers.PrimaryDataSource)));

    [GlobalSetup(Target = nameof(LibraryPrimary))]
    public void SetupLibraryPrimary() => Setup(servers => servers.Use(Route.LibraryPrimaryOnly));

    [GlobalSetup(Target = nameof(PlainEfStandby))]
    public void SetupPlainEfStandby() => Setup(servers => servers.Use(Route.PlainStandby));

    [GlobalSetup(Target = nameof(MoveReadOnly))]
    public void SetupMoveReadOnly() => Setup(servers => servers.Use(
        servers.PrimaryDataSource, [new MoveReadsInterceptor(servers.StandbyDataSource)], servers.Set.Standby, nameof(MoveReadOnly)));

    [GlobalSetup(Target = nameof(LibraryReplica))]
    public void SetupLibraryReplica() => Setup(servers => servers.Use(Route.LibraryWithReplica));

    [GlobalCleanup]
    public void Cleanup() => _servers.VerifyAndStop();

    [Benchmark(Baseline = true), BenchmarkCategory(Primary)]
    public Product PlainEfPrimary() => LoadById();

    [Benchmark, BenchmarkCategory(Primary)]
    public Product AnyCommandInterceptor() => LoadById();

    [Benchmark, BenchmarkCategory(Primary)]
    public Product AnyCommandAndConnectionInterceptor() => LoadById();

    [Benchmark, BenchmarkCategory(Primary)]
    public Product DatabaseFacadeCurrentTransaction() => LoadById();

    [Benchmark, BenchmarkCategory(Primary)]
    public Product TransactionManagerCurrentTransaction() => LoadById();

    [Benchmark, BenchmarkCategory(Primary)]
    public Product MoveReadOnlyPrimary() => LoadById();

    [Benchmark, BenchmarkCategory(Primary)]
    public Product LibraryPrimary() => LoadById();

    [Benchmark(Baseline = true), BenchmarkCategory(Replica)]
    public Product PlainEfStandby() => LoadById();

    [Benchmark, BenchmarkCategory(Replica)]
    public Product MoveReadOnly() => LoadById();

    [Benchmark, BenchmarkCategory(Replica)]
    public Product LibraryReplica() => LoadById();

    private static DbContextOptions<ShopContext> OnPrimary(BenchmarkServers servers, params IInterceptor[] interceptors)
        => servers.Use(servers.PrimaryDataSource, interceptors, servers.Set.Primary, string.Join('+', interceptors.Select(i => i.GetType().Name)));

    private void Setup(Func<BenchmarkServers, DbContextOptions<ShopContext>> use)
    {
        _servers = BenchmarkServers.StartAsync().GetAwaiter().GetResult();
        _options = use(_servers);
    }

    private Product LoadById()
    {
        using var db = new ShopContext(_options);
        return db.Products.Single(p => p.Id == _id);
    }
}
