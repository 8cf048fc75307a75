using System.Globalization;
using System.Runtime.InteropServices;
using EfReplicaInterceptor.LoadRun;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;

// Mixed read/write load against one primary and one streaming standby, run four ways on the same servers:
// dotnet run -c Release --project benchmarks/EfReplicaInterceptor.LoadRun -- --duration 20
var parsed = Arguments.Parse(args);
if (parsed is null)
{
    return 2;
}

using var cancel = new CancellationTokenSource();

// Ctrl+C and SIGTERM stop the workers; the using/finally blocks then stop pgpool and the servers.
void Stop(PosixSignalContext context)
{
    context.Cancel = true;
    cancel.Cancel();
}

using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);

try
{
    return await LoadRun.RunAsync(parsed, cancel.Token);
}
catch (OperationCanceledException) when (cancel.IsCancellationRequested)
{
    Console.Error.WriteLine("Cancelled; servers and pgpool stopped.");
    return 130;
}

namespace EfReplicaInterceptor.LoadRun
{
    internal sealed record Arguments(WorkloadSettings Settings, IReadOnlyList<string> Variants, string Output)
    {
        private const string Usage =
            """
            Usage: EfReplicaInterceptor.LoadRun [--workers N] [--duration SECONDS] [--read-share 0..1] [--read-back-share 0..1]
                                              [--warmup SECONDS] [--rounds N] [--variants primary,split,pgpool,library] [--out FOLDER]
              --workers          concurrent workers (default 8)
              --duration         measured seconds per variant (default 20)
              --read-share       share of operations that are reads of random rows (default 0.9)
              --read-back-share  share of writes read back at once by the same worker (default 0.5)
              --warmup           unmeasured seconds before each variant's first slice (default 3)
              --rounds           split each variant's duration into N slices, run round-robin in rotating order,
                                 so load from other processes falls on every variant alike (default 4)
              --variants         which variants, in order (default all four)
              --out              output folder (default benchmarks/loadrun-results under the repository)
            """;

        public static Arguments? Parse(string[] args)
        {
            var workers = 8;
            var duration = 20.0;
            var warmup = 3.0;
            var readShare = 0.9;
            var readBackShare = 0.5;
            var rounds = 4;
            IReadOnlyList<string> variants = Variant.AllKeys;
            string? output = null;
            for (var i = 0; i < args.Length; i++)
            {
                var value = i + 1 < args.Length ? args[i + 1] : null;
                var ok = args[i] switch
                {
                    "--workers" => int.TryParse(value, CultureInfo.InvariantCulture, out workers) && workers is > 0 and <= 256,
                    "--duration" => double.TryParse(value, CultureInfo.InvariantCulture, out duration) && duration is > 0 and <= 3600,
                    "--warmup" => double.TryParse(value, CultureInfo.InvariantCulture, out warmup) && warmup is >= 0 and <= 600,
                    "--rounds" => int.TryParse(value, CultureInfo.InvariantCulture, out rounds) && rounds is > 0 and <= 100,
                    "--read-share" => double.TryParse(value, CultureInfo.InvariantCulture, out readShare) && readShare is >= 0 and <= 1,
                    "--read-back-share" => double.TryParse(value, CultureInfo.InvariantCulture, out readBackShare) && readBackShare is >= 0 and <= 1,
                    "--variants" => value is not null && (variants = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).All(Variant.AllKeys.Contains) && variants.Count > 0,
                    "--out" => (output = value) is not null,
                    _ => false,
                };
                if (!ok)
                {
                    Console.Error.WriteLine($"Bad or unknown argument: {args[i]} {value}");
                    Console.Error.WriteLine(Usage);
                    return null;
                }

                i++;
            }

            var settings = new WorkloadSettings(workers, TimeSpan.FromSeconds(duration), TimeSpan.FromSeconds(warmup), readShare, readBackShare, rounds);
            return new Arguments(settings, variants, output ?? Path.Combine(RepositoryRoot(), "benchmarks", "loadrun-results"));
        }

        private static string RepositoryRoot()
        {
            for (var directory = new DirectoryInfo(Environment.CurrentDirectory); directory is not null; directory = directory.Parent)
            {
                if (File.Exists(Path.Combine(directory.FullName, "EfReplicaInterceptor.sln")))
                {
                    return directory.FullName;
                }
            }

            return Environment.CurrentDirectory;
        }
    }

    internal static class LoadRun
    {
        public static async Task<int> RunAsync(Arguments arguments, CancellationToken ct)
        {
            var settings = arguments.Settings;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Load run: {settings.Workers} workers, {settings.Duration.TotalSeconds:0.#} s per variant (+{settings.WarmUp.TotalSeconds:0.#} s warm-up), "
                + $"{settings.ReadShare:P0} reads, {settings.ReadBackShare:P0} of writes read back at once; variants: {string.Join(", ", arguments.Variants)}"));
            Console.WriteLine($"Machine: {Environment.ProcessorCount} cores, {Machine.CpuModel()}; load average at start: {Machine.LoadAverage()}");

            var pgpoolBinary = Pgpool.Locate();
            var pgpoolVersion = pgpoolBinary is null ? null : await Pgpool.VersionAsync(pgpoolBinary, ct);
            if (arguments.Variants.Contains("pgpool") && pgpoolBinary is null)
            {
                Console.WriteLine($"pgpool-II is not installed: the pgpool variant is skipped. Install it with: {Pgpool.InstallHint}");
            }

            Console.WriteLine("Starting a PostgreSQL primary and a streaming standby on loopback, with the schema ...");
            await using var set = await ShopServers.StartAsync(standbys: 1, new PostgresReplicaSetOptions { MaxConnections = 300 }, ct);
            var serverVersion = await set.Primary.ScalarAsync<string>("SHOW server_version", ct);
            Console.WriteLine($"   primary 127.0.0.1:{set.Primary.Port}, standby 127.0.0.1:{set.Standby.Port}, PostgreSQL {serverVersion}; pgpool: {pgpoolVersion ?? "not installed"}");

            var workload = new Workload(settings, set.Standby.Port);
            var results = new List<VariantResult>();
            var running = new List<(Variant Variant, List<Workload.Measurement> Slices)>();
            Pgpool? pgpool = null;
            try
            {
                foreach (var key in arguments.Variants)
                {
                    if (key == "pgpool" && pgpoolBinary is not null)
                    {
                        pgpool = await Pgpool.StartAsync(pgpoolBinary, set, settings.Workers, ct);
                        Console.WriteLine($"   pgpool on 127.0.0.1:{pgpool.Port}");
                    }

                    var variant = await CreateVariantAsync(key, set, pgpool, ct);
                    if (variant is null)
                    {
                        results.Add(VariantResult.Skipped("pgpool", "pgpool-II load balancing", "pgpool-II not installed (" + Pgpool.InstallHint + ")"));
                        continue;
                    }

                    running.Add((variant, []));
                    results.Add(VariantResult.Skipped(key, variant.Title, "placeholder"));
                }

                var slice = settings.Duration / settings.Rounds;
                for (var round = 0; round < settings.Rounds; round++)
                {
                    for (var i = 0; i < running.Count; i++)
                    {
                        var (variant, slices) = running[(i + round) % running.Count];
                        ct.ThrowIfCancellationRequested();
                        if (round == 0 && settings.WarmUp > TimeSpan.Zero)
                        {
                            await workload.RunAsync(variant, settings.WarmUp, ct);
                        }

                        var measured = await workload.RunAsync(variant, slice, ct);
                        slices.Add(measured);
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"   round {round + 1}/{settings.Rounds} {variant.Key,-8} {measured.Workers.Sum(w => w.ReadTicks.Count + w.WriteTicks.Count) / measured.Seconds,6:0} ops/s   load average {Machine.LoadAverage()}"));
                        await set.WaitForReplayAsync(set.Standby, ct: ct);
                    }
                }

                foreach (var (variant, slices) in running)
                {
                    var index = results.FindIndex(r => r.Key == variant.Key);
                    results[index] = Workload.Summarize(variant, slices);
                }
            }
            finally
            {
                foreach (var (variant, _) in running)
                {
                    await variant.DisposeAsync();
                }

                if (pgpool is not null)
                {
                    await pgpool.DisposeAsync();
                }
            }

            Console.WriteLine();
            foreach (var result in results.Where(r => r.FirstError is not null))
            {
                Console.WriteLine($"   {result.Key}: {result.Errors} errors, first: {result.FirstError}");
            }

            var caption = string.Create(CultureInfo.InvariantCulture,
                $"{settings.Workers} workers, {settings.Duration.TotalSeconds:0.#} s each in {settings.Rounds} slices, {settings.ReadShare:P0} reads; {Environment.ProcessorCount} cores, PostgreSQL {serverVersion}, {pgpoolVersion ?? "no pgpool"}; {DateTime.UtcNow:yyyy-MM-dd}");
            Directory.CreateDirectory(arguments.Output);
            var table = Report.Markdown(results);
            await File.WriteAllTextAsync(Path.Combine(arguments.Output, "loadrun.csv"), Report.Csv(results, settings), ct);
            await File.WriteAllTextAsync(Path.Combine(arguments.Output, "loadrun.svg"), Report.Svg(results, caption), ct);
            await File.WriteAllTextAsync(Path.Combine(arguments.Output, "loadrun.md"), caption + Environment.NewLine + Environment.NewLine + table, ct);
            Console.WriteLine();
            Console.WriteLine(caption);
            Console.WriteLine();
            Console.Write(table);
            Console.WriteLine();
            Console.WriteLine($"Load average at end: {Machine.LoadAverage()}. Written: {arguments.Output}/loadrun.csv, loadrun.svg, loadrun.md");
            return 0;
        }

        private static async Task<Variant?> CreateVariantAsync(string key, PostgresReplicaSet set, Pgpool? pgpool, CancellationToken ct) =>
            key switch
            {
                "primary" => Variant.PrimaryOnly(set.Primary.ConnectionString),
                "split" => Variant.HandSplit(
                    set.Primary.ConnectionString,
                    set.MultiHostPrimaryConnectionString.Replace("Target Session Attributes=primary", string.Empty, StringComparison.OrdinalIgnoreCase)),
                "pgpool" => pgpool is null ? null : Variant.Pgpool(pgpool.ConnectionString),
                _ => await Variant.LibraryAsync(set.Primary.ConnectionString, set.Standby.ConnectionString, ct),
            };
    }

    internal static class Machine
    {
        public static string CpuModel()
        {
            try
            {
                return File.ReadLines("/proc/cpuinfo").FirstOrDefault(line => line.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU";
            }
            catch (IOException)
            {
                return "unknown CPU";
            }
        }

        public static string LoadAverage()
        {
            try
            {
                return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
            }
            catch (IOException)
            {
                return "unknown";
            }
        }
    }
}
