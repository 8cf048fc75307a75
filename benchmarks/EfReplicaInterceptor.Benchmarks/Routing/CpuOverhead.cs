using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using EfReplicaInterceptor.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Npgsql;

namespace EfReplicaInterceptor.Benchmarks.Routing;

/// <summary>
/// Client CPU, wall time and allocations of a replica-routed single-row read against plain EF Core on the same standby,
/// measured side by side in one process: after a warm-up, slices of <c>--queries</c> reads alternate between the two
/// configurations (A B, B A, A B, …: the order flips every pair so a drift in the machine's load does not favour either),
/// and every pair gives one ratio B/A. Ratios, never absolute times: on a shared machine the absolute figures move by
/// 2x between minutes, while two slices a few hundred milliseconds apart see nearly the same machine.
/// <list type="bullet">
/// <item>A: plain EF Core, <c>UseNpgsql(standby data source)</c>, no interceptor.</item>
/// <item>B: the library, <c>UseEfReplicaCluster(cluster)</c> (with <c>--interceptors-only</c>:
/// <c>UseNpgsql(cluster.PrimaryDataSource).AddInterceptors(cluster.Interceptors)</c>), the standby as the cluster's replica:
/// the read runs on the same server as A's, so the server's work is identical.</item>
/// </list>
/// Paths (<c>--paths</c>, comma-separated): <c>sync</c> and <c>async</c> (one single-row read at a time), <c>range-sync</c> and
/// <c>range-async</c> (one 50-row range read at a time), <c>concurrent</c> (<c>--concurrency</c> contexts at once, a 50-row
/// range read each). <c>--only a|b</c> runs one side of the first path alone, for a profiler (see <see cref="Profile"/>).
/// Run with <c>--cpu-overhead</c> (see benchmarks/README.md). Uses only the library's public API and the
/// <c>EfReplicaInterceptor.Testing</c> servers, so the same file measures older commits too.
/// </summary>
/// <remarks>
/// <para>
/// CPU is read with <c>clock_gettime</c> (nanosecond resolution; <c>/proc</c>'s counters tick at 10 ms, too coarse for a
/// slice). Sync reads run on the calling thread, so the thread's CPU is exactly theirs; the process's CPU is reported too
/// (it adds the GC's background work the allocations cause). Async reads resume on thread-pool threads, so for them only
/// the process's CPU means anything; nothing else runs in the process during a slice (the cluster's health check is set to
/// 30 min and no listener is attached).
/// </para>
/// <para>
/// EF Core 10 allocates several KB more per context for every <see cref="DbContextOptions"/> instance except the first one a
/// process uses (benchmarks/README.md, "One options instance per process"; measured with <c>--control --prime a</c>:
/// about 6 KB and 1.17x the CPU per read for identical code). Two measured configurations in one process would charge that to
/// whichever is used second, so a third, plain configuration is used first (<c>--prime neutral</c>, the default) and both
/// measured ones are "not the first". <c>--control</c> replaces B with a second plain configuration: its ratios show the
/// harness's own bias (expected 1.00 and 0 B).
/// </para>
/// </remarks>
internal static class CpuOverhead
{
    private const int ProductId = 421;

    private static int s_concurrency = 32;
    private static bool s_concurrent;
    private static bool s_range;
    private static (int Gen0, int Gen1, double PauseMs) s_lastGc;

    public static int Run(string[] args)
    {
        var slices = IntArg(args, "--slices", 20);
        var queries = IntArg(args, "--queries", 500);
        var warmup = IntArg(args, "--warmup", 3000);
        var prime = StringArg(args, "--prime", "neutral");
        var control = args.Contains("--control");
        var interceptorsOnly = args.Contains("--interceptors-only");
        var paths = StringArg(args, "--paths", "sync,async").Split(',');
        var only = StringArg(args, "--only", "");
        s_concurrency = IntArg(args, "--concurrency", 32);

        if (Environment.GetEnvironmentVariable("DOTNET_TC_CallCountingDelayMs") != "0")
        {
            Console.WriteLine("note: DOTNET_TC_CallCountingDelayMs is not 0; tier-1 code may arrive late (see FewMinutesConfig).");
        }

        return RunAsync(slices, queries, warmup, prime, control, interceptorsOnly, paths, only).GetAwaiter().GetResult();
    }

    private static async Task<int> RunAsync(int slices, int queries, int warmup, string prime, bool control, bool interceptorsOnly, string[] paths, string only)
    {
        await using var set = await PostgresReplicaSet.StartAsync(standbys: 1);
        await set.Primary.ExecuteAsync(ShopContext.Schema);
        await set.WaitForReplayAsync(set.Standby);

        await using var neutralSource = NpgsqlDataSource.Create(set.Standby.ConnectionString);
        await using var plainSource = NpgsqlDataSource.Create(set.Standby.ConnectionString);
        await using var controlSource = NpgsqlDataSource.Create(set.Standby.ConnectionString);
        await using var cluster = EfReplicaCluster.Create(new EfReplicaOptions
        {
            Primary = set.Primary.ConnectionString,
            Replicas = { new ReplicaEndpointOptions { Name = "standby", ConnectionString = set.Standby.ConnectionString } },
            HealthCheckInterval = TimeSpan.FromMinutes(30),
        });
        await cluster.RefreshHealthAsync();

        var a = Options(plainSource, interceptors: null);
        var b = control ? Options(controlSource, interceptors: null)
            : interceptorsOnly ? Options(cluster.PrimaryDataSource, cluster.Interceptors)
            : new DbContextOptionsBuilder<ShopContext>().UseEfReplicaCluster(cluster).Options;
        var bName = control ? "plain EF, second options (control)"
            : interceptorsOnly ? "library (interceptors only), standby as replica" : "library (UseEfReplicaCluster), standby as replica";
        switch (prime)
        {
            case "neutral": Verify(Options(neutralSource, interceptors: null), set.Standby, "neutral"); break;
            case "a": break;
            case "b": Verify(b, set.Standby, "B"); break;
            default: throw new ArgumentException($"--prime {prime}: expected neutral, a or b.");
        }

        Verify(a, set.Standby, "A");
        Verify(b, set.Standby, "B");

        Console.WriteLine($"A = plain EF on the standby; B = {bName}; prime = {prime}");
        Console.WriteLine($"{slices} slices per side x {queries} reads (new context each), warm-up {warmup} per side; GC server={System.Runtime.GCSettings.IsServerGC}, processors={Environment.ProcessorCount}");

        if (only is "a" or "b" or "ab")
        {
            await Profile(a, b, only, paths[0], slices, queries, warmup).ConfigureAwait(false);
            return 0;
        }

        foreach (var path in paths)
        {
            var isAsync = path is not ("sync" or "range-sync");
            s_concurrent = path == "concurrent";
            s_range = path is "range-sync" or "range-async";
            for (var i = 0; i < warmup / 500; i++)
            {
                await Slice(a, 500, isAsync);
                await Slice(b, 500, isAsync);
            }

            var results = new List<(Sample A, Sample B)>();
            for (var i = 0; i < slices; i++)
            {
                Sample sa, sb;
                if (i % 2 == 0)
                {
                    sa = await Slice(a, queries, isAsync);
                    sb = await Slice(b, queries, isAsync);
                }
                else
                {
                    sb = await Slice(b, queries, isAsync);
                    sa = await Slice(a, queries, isAsync);
                }

                results.Add((sa, sb));
            }

            Report(path, queries, results, isAsync);
        }

        Verify(a, set.Standby, "A");
        Verify(b, set.Standby, "B");
        return 0;
    }

    /// <summary>
    /// <c>--only a|b|ab</c>: one side alone, or both interleaved as in the measurement, for a profiler. After the warm-up it
    /// prints <c>ready</c> and the process id, gives the profiler 3 s to attach, runs the slices (printing each slice's side
    /// and its start and end on <c>CLOCK_MONOTONIC</c>, so a profiler's samples can be split by side: <c>perf record -k
    /// CLOCK_MONOTONIC</c>), and prints <c>done</c>.
    /// </summary>
    private static async Task Profile(DbContextOptions<ShopContext> a, DbContextOptions<ShopContext> b, string sides, string path, int slices, int queries, int warmup)
    {
        var isAsync = path is not ("sync" or "range-sync");
        s_concurrent = path == "concurrent";
        s_range = path is "range-sync" or "range-async";
        var order = sides == "ab" ? new[] { ('a', a), ('b', b) } : [(sides[0], sides == "a" ? a : b)];
        for (var i = 0; i < warmup / 500; i++)
        {
            foreach (var (_, options) in order)
            {
                await Slice(options, 500, isAsync);
            }
        }

        Console.WriteLine($"ready {Environment.ProcessId} side {sides} path {path}");
        Thread.Sleep(3000);
        for (var i = 0; i < slices; i++)
        {
            for (var j = 0; j < order.Length; j++)
            {
                var (side, options) = order[(i + j) % order.Length]; // A B, B A, ...
                var start = Clock(ClockMonotonic);
                var sample = await Slice(options, queries, isAsync);
                var end = Clock(ClockMonotonic);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"slice {side} {start} {end} {queries} cpu {sample.ProcessCpuNs / 1000:0.0} us/read bytes {sample.Bytes:0} B/read gc0 {s_lastGc.Gen0} gc1 {s_lastGc.Gen1} pause {s_lastGc.PauseMs:0.0} ms"));
            }
        }

        Console.WriteLine("done");
    }

    private static DbContextOptions<ShopContext> Options(NpgsqlDataSource source, IEnumerable<IInterceptor>? interceptors)
    {
        var builder = new DbContextOptionsBuilder<ShopContext>().UseNpgsql(source);
        if (interceptors is not null)
        {
            builder.AddInterceptors(interceptors);
        }

        return builder.Options;
    }

    /// <summary>Fails unless a read with <paramref name="options"/> runs on <paramref name="expected"/>, as the server says.</summary>
    private static void Verify(DbContextOptions<ShopContext> options, PostgresServer expected, string name)
    {
        using var db = new ShopContext(options);
        var port = db.Database.SqlQueryRaw<int>("SELECT inet_server_port() AS \"Value\"").AsEnumerable().Single();
        if (port != expected.Port)
        {
            throw new InvalidOperationException($"{name}: a read ran on port {port}, expected {expected.Name} (port {expected.Port}).");
        }
    }

    private static async Task<Sample> Slice(DbContextOptions<ShopContext> options, int queries, bool isAsync)
    {
        // Sync: everything on this thread, so the thread's counters are the reads'. Async: the process's.
        var thread0 = ThreadCpuNs();
        var process0 = ProcessCpuNs();
        var bytes0 = GC.GetTotalAllocatedBytes(precise: true);
        var gen0 = GC.CollectionCount(0);
        var gen1 = GC.CollectionCount(1);
        var pause0 = GC.GetTotalPauseDuration();
        var wall = Stopwatch.StartNew();
        var p50 = 0.0;
        if (s_concurrent)
        {
            p50 = await ConcurrentReads(options, queries).ConfigureAwait(false);
        }
        else if (s_range)
        {
            for (var i = 0; i < queries; i++)
            {
                var from = 1 + ((i * 50) % 900);
                if (isAsync)
                {
                    await using var db = new ShopContext(options);
                    Check(await db.Products.Where(p => p.Id >= from && p.Id < from + 50).ToListAsync().ConfigureAwait(false));
                }
                else
                {
                    using var db = new ShopContext(options);
                    Check(db.Products.Where(p => p.Id >= from && p.Id < from + 50).ToList());
                }
            }
        }
        else if (isAsync)
        {
            for (var i = 0; i < queries; i++)
            {
                await using var db = new ShopContext(options);
                _ = await db.Products.SingleAsync(p => p.Id == ProductId).ConfigureAwait(false);
            }
        }
        else
        {
            for (var i = 0; i < queries; i++)
            {
                using var db = new ShopContext(options);
                _ = db.Products.Single(p => p.Id == ProductId);
            }
        }

        wall.Stop();
        var bytes = GC.GetTotalAllocatedBytes(precise: true) - bytes0;
        s_lastGc = (GC.CollectionCount(0) - gen0, GC.CollectionCount(1) - gen1, (GC.GetTotalPauseDuration() - pause0).TotalMilliseconds);
        return new Sample(
            WallNs: wall.Elapsed.TotalNanoseconds / queries,
            ThreadCpuNs: (double)(ThreadCpuNs() - thread0) / queries,
            ProcessCpuNs: (double)(ProcessCpuNs() - process0) / queries,
            Bytes: (double)bytes / queries,
            LatencyP50Ns: p50);
    }

    /// <summary>
    /// The "concurrent" path: <c>--concurrency</c> contexts at once (32 by default), each reading a 50-row range in turn until
    /// <paramref name="queries"/> reads are done; returns the median latency of one read (ns).
    /// </summary>
    private static async Task<double> ConcurrentReads(DbContextOptions<ShopContext> options, int queries)
    {
        var latencies = new double[queries];
        var next = -1;
        var workers = new Task[s_concurrency];
        for (var w = 0; w < workers.Length; w++)
        {
            workers[w] = Task.Run(async () =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < queries)
                {
                    var start = Stopwatch.GetTimestamp();
                    await using var db = new ShopContext(options);
                    var from = 1 + ((i * 50) % 900);
                    var rows = await db.Products.Where(p => p.Id >= from && p.Id < from + 50).ToListAsync().ConfigureAwait(false);
                    latencies[i] = Stopwatch.GetElapsedTime(start).TotalNanoseconds;
                    Check(rows);
                }
            });
        }

        await Task.WhenAll(workers).ConfigureAwait(false);
        Array.Sort(latencies);
        return Median(latencies);
    }

    private static void Check(List<Product> rows)
    {
        if (rows.Count != 50)
        {
            throw new InvalidOperationException($"expected 50 rows, read {rows.Count}");
        }
    }

    private static void Report(string path, int queries, List<(Sample A, Sample B)> results, bool isAsync)
    {
        Console.WriteLine();
        Console.WriteLine($"## {path}: {results.Count} pairs of {queries} reads");
        Console.WriteLine("| measure | A median | B median | B/A median [min-max] over pairs | 95% CI of the median ratio |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        if (!isAsync)
        {
            Row("client CPU, query thread (us/read)", results, s => s.ThreadCpuNs / 1000);
        }

        if (s_concurrent)
        {
            Row($"throughput, {s_concurrency} concurrent contexts (reads/s)", results, s => 1e9 / s.WallNs);
            Row("latency p50 (us)", results, s => s.LatencyP50Ns / 1000);
        }

        Row("client CPU, process (us/read)", results, s => s.ProcessCpuNs / 1000);
        Row("wall (us/read)", results, s => s.WallNs / 1000);
        Row("allocated, all threads (B/read)", results, s => s.Bytes);
        var extra = results.Select(r => r.B.Bytes - r.A.Bytes).Order().ToArray();
        Console.WriteLine($"extra bytes per read, B - A: median {Median(extra):+#,0;-#,0;0} [{extra[0]:+#,0;-#,0;0} to {extra[^1]:+#,0;-#,0;0}]");
    }

    private static void Row(string name, List<(Sample A, Sample B)> results, Func<Sample, double> measure)
    {
        var ratios = results.Select(r => measure(r.B) / measure(r.A)).Order().ToArray();
        var a = Median(results.Select(r => measure(r.A)).Order().ToArray());
        var b = Median(results.Select(r => measure(r.B)).Order().ToArray());
        // Distribution-free interval of the median: order statistics n/2 -+ 0.98 sqrt(n) (binomial, normal approximation).
        var k = Math.Max(0, (int)Math.Floor((ratios.Length / 2.0) - (0.98 * Math.Sqrt(ratios.Length))));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {name} | {a:#,0.0} | {b:#,0.0} | {Median(ratios):0.000} [{ratios[0]:0.000}-{ratios[^1]:0.000}] | {ratios[k]:0.000}-{ratios[ratios.Length - 1 - k]:0.000} |"));
    }

    private static double Median(double[] sorted) =>
        sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;

    private static int IntArg(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }

    private static string StringArg(string[] args, string name, string fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    private const int ClockMonotonic = 1;

    private const int ClockProcessCpuTime = 2;
    private const int ClockThreadCpuTime = 3;

    private static long ThreadCpuNs() => Clock(ClockThreadCpuTime);

    private static long ProcessCpuNs() => Clock(ClockProcessCpuTime);

    private static long Clock(int clock)
    {
        if (clock_gettime(clock, out var ts) != 0)
        {
            throw new InvalidOperationException($"clock_gettime({clock}) failed: {Marshal.GetLastPInvokeError()}");
        }

        return (ts.Seconds * 1_000_000_000L) + ts.Nanoseconds;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int clock_gettime(int clockId, out TimeSpec ts);

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    private readonly record struct Sample(double WallNs, double ThreadCpuNs, double ProcessCpuNs, double Bytes, double LatencyP50Ns);

    /// <summary>The harness's own model, so it depends on nothing but the library and the test servers.</summary>
    private sealed class ShopContext(DbContextOptions<ShopContext> options) : DbContext(options)
    {
        public const string Schema = """
            CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price numeric(10, 2) NOT NULL, stock int NOT NULL);
            INSERT INTO products (id, name, price, stock)
                SELECT g, 'product-' || g, (g % 100) + 0.99, g % 17 FROM generate_series(1, 1000) g;
            ANALYZE;
            """;

        public DbSet<Product> Products => Set<Product>();

        protected override void OnModelCreating(ModelBuilder modelBuilder) =>
            modelBuilder.Entity<Product>(product =>
            {
                product.ToTable("products");
                product.Property(p => p.Id).HasColumnName("id").ValueGeneratedNever();
                product.Property(p => p.Name).HasColumnName("name");
                product.Property(p => p.Price).HasColumnName("price").HasPrecision(10, 2);
                product.Property(p => p.Stock).HasColumnName("stock");
            });
    }

    private sealed class Product
    {
        public int Id { get; set; }

        public string Name { get; set; } = "";

        public decimal Price { get; set; }

        public int Stock { get; set; }
    }
}
