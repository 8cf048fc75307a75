using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using EfReplicaInterceptor.Benchmarks.Infrastructure;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.Benchmarks.Routing;

/// <summary>
/// What the library costs a query. Each category compares one query, on one path (sync or async), against one server:
/// <list type="bullet">
/// <item><c>Primary</c>: plain EF Core on the primary (baseline) against the same query through the library with a cluster
/// that has no replica (decided <c>no-replica</c>; the read ends on the primary).</item>
/// <item><c>Replica</c>: plain EF Core pointed straight at the standby (baseline) against the same query through the library
/// with the standby as replica (EF's connection on the primary, the read run on the standby and handed to EF with
/// <c>SuppressWithResult</c>).</item>
/// </list>
/// The queries: one row by primary key (tracked, as an application loads an entity to show or edit it) and a 50-row page
/// (no tracking, as a list screen reads it). A new context per operation, as a request does.
/// </summary>
/// <remarks>
/// The configuration a method measures is chosen by the <c>[GlobalSetup]</c> that targets it: each case runs in its own
/// process with exactly one options instance (see <see cref="BenchmarkServers"/>), so methods of the same query and path
/// share a body and differ only in that setup.
/// </remarks>
[MemoryDiagnoser]
[Config(typeof(FewMinutesConfig))]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class QueryOverheadBenchmarks
{
    private const string ById = "ById";
    private const string Page = "Page50";
    private const string Sync = "Sync";
    private const string Async = "Async";
    private const string Primary = "Primary";
    private const string Replica = "Replica";
    private const int PageSize = 50;

    private readonly int _id = 421;
    private readonly int _after = 300;
    private BenchmarkServers _servers = null!;
    private DbContextOptions<ShopContext> _options = null!;

    [GlobalSetup(Targets = [nameof(ByIdPlainEfPrimary), nameof(ByIdPlainEfPrimaryAsync), nameof(PagePlainEfPrimary), nameof(PagePlainEfPrimaryAsync)])]
    public void SetupPlainEfPrimary() => Setup(Route.PlainPrimary);

    [GlobalSetup(Targets = [nameof(ByIdLibraryPrimary), nameof(ByIdLibraryPrimaryAsync), nameof(PageLibraryPrimary), nameof(PageLibraryPrimaryAsync)])]
    public void SetupLibraryPrimary() => Setup(Route.LibraryPrimaryOnly);

    [GlobalSetup(Targets = [nameof(ByIdPlainEfStandby), nameof(ByIdPlainEfStandbyAsync), nameof(PagePlainEfStandby), nameof(PagePlainEfStandbyAsync)])]
    public void SetupPlainEfStandby() => Setup(Route.PlainStandby);

    [GlobalSetup(Targets = [nameof(ByIdLibraryReplica), nameof(ByIdLibraryReplicaAsync), nameof(PageLibraryReplica), nameof(PageLibraryReplicaAsync)])]
    public void SetupLibraryReplica() => Setup(Route.LibraryWithReplica);

    [GlobalCleanup]
    public void Cleanup() => _servers.VerifyAndStop();

    // One row by primary key.

    [Benchmark(Baseline = true), BenchmarkCategory(ById, Sync, Primary)]
    public Product ByIdPlainEfPrimary() => LoadById();

    [Benchmark, BenchmarkCategory(ById, Sync, Primary)]
    public Product ByIdLibraryPrimary() => LoadById();

    [Benchmark(Baseline = true), BenchmarkCategory(ById, Sync, Replica)]
    public Product ByIdPlainEfStandby() => LoadById();

    [Benchmark, BenchmarkCategory(ById, Sync, Replica)]
    public Product ByIdLibraryReplica() => LoadById();

    [Benchmark(Baseline = true), BenchmarkCategory(ById, Async, Primary)]
    public Task<Product> ByIdPlainEfPrimaryAsync() => LoadByIdAsync();

    [Benchmark, BenchmarkCategory(ById, Async, Primary)]
    public Task<Product> ByIdLibraryPrimaryAsync() => LoadByIdAsync();

    [Benchmark(Baseline = true), BenchmarkCategory(ById, Async, Replica)]
    public Task<Product> ByIdPlainEfStandbyAsync() => LoadByIdAsync();

    [Benchmark, BenchmarkCategory(ById, Async, Replica)]
    public Task<Product> ByIdLibraryReplicaAsync() => LoadByIdAsync();

    // A 50-row page.

    [Benchmark(Baseline = true), BenchmarkCategory(Page, Sync, Primary)]
    public List<Product> PagePlainEfPrimary() => LoadPage();

    [Benchmark, BenchmarkCategory(Page, Sync, Primary)]
    public List<Product> PageLibraryPrimary() => LoadPage();

    [Benchmark(Baseline = true), BenchmarkCategory(Page, Sync, Replica)]
    public List<Product> PagePlainEfStandby() => LoadPage();

    [Benchmark, BenchmarkCategory(Page, Sync, Replica)]
    public List<Product> PageLibraryReplica() => LoadPage();

    [Benchmark(Baseline = true), BenchmarkCategory(Page, Async, Primary)]
    public Task<List<Product>> PagePlainEfPrimaryAsync() => LoadPageAsync();

    [Benchmark, BenchmarkCategory(Page, Async, Primary)]
    public Task<List<Product>> PageLibraryPrimaryAsync() => LoadPageAsync();

    [Benchmark(Baseline = true), BenchmarkCategory(Page, Async, Replica)]
    public Task<List<Product>> PagePlainEfStandbyAsync() => LoadPageAsync();

    [Benchmark, BenchmarkCategory(Page, Async, Replica)]
    public Task<List<Product>> PageLibraryReplicaAsync() => LoadPageAsync();

    private void Setup(Route route)
    {
        _servers = BenchmarkServers.StartFor(route);
        _options = _servers.Options;
    }

    private Product LoadById()
    {
        using var db = new ShopContext(_options);
        return db.Products.Single(p => p.Id == _id);
    }

    private async Task<Product> LoadByIdAsync()
    {
        await using var db = new ShopContext(_options);
        return await db.Products.SingleAsync(p => p.Id == _id);
    }

    private List<Product> LoadPage()
    {
        using var db = new ShopContext(_options);
        return db.Products.AsNoTracking().Where(p => p.Id > _after).OrderBy(p => p.Id).Take(PageSize).ToList();
    }

    private async Task<List<Product>> LoadPageAsync()
    {
        await using var db = new ShopContext(_options);
        return await db.Products.AsNoTracking().Where(p => p.Id > _after).OrderBy(p => p.Id).Take(PageSize).ToListAsync();
    }
}
