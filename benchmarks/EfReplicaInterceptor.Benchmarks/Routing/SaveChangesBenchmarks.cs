using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using EfReplicaInterceptor.Benchmarks.Infrastructure;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.Benchmarks.Routing;

/// <summary>
/// What the library costs a write: a new context adds one or ten purchases and saves them, plain EF Core on the primary
/// (baseline) against the same through the library with the standby configured as replica (the INSERTs are decided for
/// the primary and left to EF). Ten entities go out as one batched command inside the transaction EF begins for them.
/// </summary>
/// <remarks>The configuration is chosen by the <c>[GlobalSetup]</c> that targets the method (one options instance per process, see <see cref="BenchmarkServers"/>).</remarks>
[MemoryDiagnoser]
[Config(typeof(FewMinutesConfig))]
[InvocationCount(96)]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class SaveChangesBenchmarks
{
    private const string One = "One";
    private const string Ten = "Ten";
    private const string Sync = "Sync";
    private const string Async = "Async";

    private BenchmarkServers _servers = null!;
    private DbContextOptions<ShopContext> _options = null!;
    private int _next;

    [GlobalSetup(Targets = [nameof(OnePlainEf), nameof(TenPlainEf), nameof(OnePlainEfAsync), nameof(TenPlainEfAsync)])]
    public void SetupPlainEf() => Setup(Route.PlainPrimary);

    [GlobalSetup(Targets = [nameof(OneLibrary), nameof(TenLibrary), nameof(OneLibraryAsync), nameof(TenLibraryAsync)])]
    public void SetupLibrary() => Setup(Route.LibraryWithReplica);

    [GlobalCleanup]
    public void Cleanup() => _servers.VerifyAndStop();

    [Benchmark(Baseline = true), BenchmarkCategory(One, Sync)]
    public int OnePlainEf() => Save(1);

    [Benchmark, BenchmarkCategory(One, Sync)]
    public int OneLibrary() => Save(1);

    [Benchmark(Baseline = true), BenchmarkCategory(Ten, Sync)]
    public int TenPlainEf() => Save(10);

    [Benchmark, BenchmarkCategory(Ten, Sync)]
    public int TenLibrary() => Save(10);

    [Benchmark(Baseline = true), BenchmarkCategory(One, Async)]
    public Task<int> OnePlainEfAsync() => SaveAsync(1);

    [Benchmark, BenchmarkCategory(One, Async)]
    public Task<int> OneLibraryAsync() => SaveAsync(1);

    [Benchmark(Baseline = true), BenchmarkCategory(Ten, Async)]
    public Task<int> TenPlainEfAsync() => SaveAsync(10);

    [Benchmark, BenchmarkCategory(Ten, Async)]
    public Task<int> TenLibraryAsync() => SaveAsync(10);

    private void Setup(Route route)
    {
        _servers = BenchmarkServers.StartFor(route);
        _options = _servers.Options;
    }

    private int Save(int count)
    {
        using var db = new ShopContext(_options);
        AddPurchases(db, count);
        return db.SaveChanges();
    }

    private async Task<int> SaveAsync(int count)
    {
        await using var db = new ShopContext(_options);
        AddPurchases(db, count);
        return await db.SaveChangesAsync();
    }

    private void AddPurchases(ShopContext db, int count)
    {
        for (var i = 0; i < count; i++)
        {
            var n = ++_next;
            db.Purchases.Add(new Purchase { ProductId = 1 + (n % ShopContext.ProductCount), Quantity = 1 + (n % 5), Customer = "customer-42" });
        }
    }
}
