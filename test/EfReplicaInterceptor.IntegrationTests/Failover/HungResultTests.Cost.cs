using System.Diagnostics;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Failover;

/// <summary>What watching a result to its last row costs per row: a measurement, not a test (run it by name).</summary>
public sealed partial class HungResultTests
{
    [Test]
    [Explicit("measurement: allocations and time per row of a streamed result, and per single-row read, the library against plain EF on the same standby")]
    public async Task Cost_of_the_watch_per_row_and_per_read()
    {
        const int rows = 100_000;
        const int reads = 2_000;
        await using var cluster = await TestCluster.CreateAsync(_servers, options => options.HealthCheckInterval = TimeSpan.FromMinutes(30), recordEvents: false);
        var standby = _servers.Standbys[0];
        var builder = new NpgsqlDataSourceBuilder(standby.ConnectionString);
        TestCluster.MapTypes(builder);
        await using var standbySource = builder.Build();
        var plain = new DbContextOptionsBuilder<ShopContext>().UseNpgsql(standbySource, npgsql => npgsql.MapEnum<Mood>("mood"))
            .ConfigureWarnings(warnings => warnings.Ignore(CoreEventId.ManyServiceProvidersCreatedWarning)).Options;
        var library = cluster.ContextOptions(ConnectionMode.InterceptorsOnly);
        var sql = $"SELECT g AS \"Value\" FROM generate_series(1, {rows}) AS g";

        (long Bytes, double Ms) Stream(DbContextOptions<ShopContext> options)
        {
            using var context = new ShopContext(options);
            var bytes = GC.GetAllocatedBytesForCurrentThread();
            var clock = Stopwatch.StartNew();
            long sum = 0;
            foreach (var value in context.Database.SqlQueryRaw<int>(sql).AsEnumerable())
            {
                sum += value;
            }

            Assert.That(sum, Is.EqualTo((long)rows * (rows + 1) / 2));
            return (GC.GetAllocatedBytesForCurrentThread() - bytes, clock.Elapsed.TotalMilliseconds);
        }

        async Task<(long Bytes, double Ms)> StreamAsync(DbContextOptions<ShopContext> options)
        {
            await using var context = new ShopContext(options);
            var bytes = GC.GetTotalAllocatedBytes(precise: true); // every thread: the continuations run on the pool
            var clock = Stopwatch.StartNew();
            long sum = 0;
            await foreach (var value in context.Database.SqlQueryRaw<int>(sql).AsAsyncEnumerable())
            {
                sum += value;
            }

            Assert.That(sum, Is.EqualTo((long)rows * (rows + 1) / 2));
            return (GC.GetTotalAllocatedBytes(precise: true) - bytes, clock.Elapsed.TotalMilliseconds);
        }

        (long Bytes, double Ms) Reads(DbContextOptions<ShopContext> options)
        {
            var bytes = GC.GetAllocatedBytesForCurrentThread();
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < reads; i++)
            {
                using var context = new ShopContext(options);
                Assert.That(context.WhereAmI().Single().InRecovery, Is.True);
            }

            return (GC.GetAllocatedBytesForCurrentThread() - bytes, clock.Elapsed.TotalMilliseconds);
        }

        for (var warm = 0; warm < 3; warm++)
        {
            Stream(plain);
            Stream(library);
            Reads(plain);
            Reads(library);
            await StreamAsync(plain);
            await StreamAsync(library);
        }

        var streamed = new List<((long Bytes, double Ms) Plain, (long Bytes, double Ms) Library)>();
        var single = new List<((long Bytes, double Ms) Plain, (long Bytes, double Ms) Library)>();
        var streamedAsync = new List<((long Bytes, double Ms) Plain, (long Bytes, double Ms) Library)>();
        for (var round = 0; round < 7; round++)
        {
            streamed.Add((Stream(plain), Stream(library)));
            single.Add((Reads(plain), Reads(library)));
            streamedAsync.Add((await StreamAsync(plain), await StreamAsync(library)));
        }

        static double Median(IEnumerable<double> values) => values.Order().ElementAt(values.Count() / 2);
        TestContext.Out.WriteLine(
            $"streamed {rows:N0} int rows, sync, 7 interleaved rounds (medians): plain EF {Median(streamed.Select(s => (double)s.Plain.Bytes)):N0} B, " +
            $"{Median(streamed.Select(s => s.Plain.Ms)):0.0} ms; library {Median(streamed.Select(s => (double)s.Library.Bytes)):N0} B, {Median(streamed.Select(s => s.Library.Ms)):0.0} ms; " +
            $"extra bytes per row {Median(streamed.Select(s => (double)(s.Library.Bytes - s.Plain.Bytes) / rows)):0.000}, " +
            $"time ratio {Median(streamed.Select(s => s.Library.Ms / s.Plain.Ms)):0.000} (pairs {streamed.Min(s => s.Library.Ms / s.Plain.Ms):0.000}-{streamed.Max(s => s.Library.Ms / s.Plain.Ms):0.000})");
        TestContext.Out.WriteLine(
            $"streamed {rows:N0} int rows, async (AsAsyncEnumerable, all threads' allocations): plain EF {Median(streamedAsync.Select(s => (double)s.Plain.Bytes)):N0} B, " +
            $"{Median(streamedAsync.Select(s => s.Plain.Ms)):0.0} ms; library {Median(streamedAsync.Select(s => (double)s.Library.Bytes)):N0} B, {Median(streamedAsync.Select(s => s.Library.Ms)):0.0} ms; " +
            $"extra bytes per row {Median(streamedAsync.Select(s => (double)(s.Library.Bytes - s.Plain.Bytes) / rows)):0.000}, time ratio {Median(streamedAsync.Select(s => s.Library.Ms / s.Plain.Ms)):0.000}");
        TestContext.Out.WriteLine(
            $"single-row reads ({reads:N0} per round, a new context each): plain EF {Median(single.Select(s => (double)s.Plain.Bytes / reads)):N0} B per read; " +
            $"library {Median(single.Select(s => (double)s.Library.Bytes / reads)):N0} B per read (this thread's allocations only)");
    }
}
