using System.Diagnostics;
using System.Globalization;
using EfReplicaInterceptor.TestSupport;

namespace EfReplicaInterceptor.LoadRun;

/// <summary>The workload's knobs, from the command line.</summary>
internal sealed record WorkloadSettings(int Workers, TimeSpan Duration, TimeSpan WarmUp, double ReadShare, double ReadBackShare, int Rounds);

/// <summary>What one variant measured.</summary>
internal sealed record VariantResult(
    string Key,
    string Title,
    string Status,
    double Seconds,
    long Operations,
    long Reads,
    long StandbyReads,
    long Writes,
    long ReadBacks,
    long ReadBackMisses,
    long ReadBacksOnPrimary,
    long Errors,
    double P50Ms,
    double P99Ms,
    double ReadP50Ms,
    double WriteP50Ms,
    double ReadBackP50Ms,
    string? FirstError)
{
    public double OperationsPerSecond => Seconds > 0 ? Operations / Seconds : 0;

    public double StandbyShare => Reads > 0 ? (double)StandbyReads / Reads : 0;

    public static VariantResult Skipped(string key, string title, string why) =>
        new(key, title, "skipped: " + why, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, null);
}

/// <summary>
/// N workers, each in a loop until the deadline: with probability ReadShare a read of a random seeded row (through the
/// variant's read context), otherwise an insert of a row with a client-generated key (a unit of work: one context, one
/// SaveChanges), followed with probability ReadBackShare by reading that row back at once: in the same context, or in
/// the read context for the hand-split variant. Every read reports the port of the server that answered.
/// </summary>
internal sealed class Workload(WorkloadSettings settings, int standbyPort)
{
    private readonly string _standbyPort = standbyPort.ToString(CultureInfo.InvariantCulture);

    /// <summary>Runs the workers against <paramref name="variant"/> for <paramref name="duration"/>; returns what they measured.</summary>
    public async Task<Measurement> RunAsync(Variant variant, TimeSpan duration, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var workers = await RunWorkersAsync(variant, duration, ct);
        return new Measurement(clock.Elapsed.TotalSeconds, workers);
    }

    /// <summary>Everything measured for one variant, over all its slices.</summary>
    public static VariantResult Summarize(Variant variant, IReadOnlyList<Measurement> slices)
    {
        var workers = slices.SelectMany(slice => slice.Workers).ToArray();
        var reads = workers.SelectMany(w => w.ReadTicks).ToArray();
        var writes = workers.SelectMany(w => w.WriteTicks).ToArray();
        var readBacks = workers.SelectMany(w => w.ReadBackTicks).ToArray();
        var all = reads.Concat(writes).ToArray();
        var errors = workers.Sum(w => w.Errors);
        return new VariantResult(
            variant.Key,
            variant.Title,
            errors == 0 ? "ok" : "errors",
            slices.Sum(slice => slice.Seconds),
            all.Length,
            reads.Length,
            workers.Sum(w => w.StandbyReads),
            writes.Length,
            workers.Sum(w => w.ReadBacks),
            workers.Sum(w => w.ReadBackMisses),
            workers.Sum(w => w.ReadBacksOnPrimary),
            errors,
            Percentile(all, 0.50),
            Percentile(all, 0.99),
            Percentile(reads, 0.50),
            Percentile(writes, 0.50),
            Percentile(readBacks, 0.50),
            workers.Select(w => w.FirstError).FirstOrDefault(e => e is not null));
    }

    private async Task<IReadOnlyList<WorkerStats>> RunWorkersAsync(Variant variant, TimeSpan duration, CancellationToken ct)
    {
        // Hard bound: operations in flight at the deadline get a grace period, then are cancelled.
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(duration + TimeSpan.FromSeconds(15));
        var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var workers = Enumerable.Range(1, settings.Workers)
            .Select(number => Task.Run(() => RunWorkerAsync(variant, number, deadline, limit.Token), limit.Token))
            .ToArray();
        var stats = await Task.WhenAll(workers);
        ct.ThrowIfCancellationRequested();
        return stats;
    }

    private async Task<WorkerStats> RunWorkerAsync(Variant variant, int worker, long deadline, CancellationToken ct)
    {
        var stats = new WorkerStats();
        var random = new Random(worker * 7919);
        while (Stopwatch.GetTimestamp() < deadline && !ct.IsCancellationRequested)
        {
            try
            {
                if (random.NextDouble() < settings.ReadShare)
                {
                    var id = ShopContext.SeededItemId(random.Next(1, ShopContext.SeededItemCount + 1));
                    await using var db = variant.CreateReadContext();
                    var row = await TimedReadAsync(db, id, stats, ct);
                    if (row is null)
                    {
                        stats.Error($"seeded row {id} not found");
                    }

                    continue;
                }

                var item = new Item { Id = Guid.NewGuid(), Worker = worker, Payload = "written by worker " + worker.ToString(CultureInfo.InvariantCulture) };
                await using var unit = variant.CreateWriteContext();
                unit.Items.Add(item);
                var started = Stopwatch.GetTimestamp();
                await unit.SaveChangesAsync(ct);
                stats.WriteTicks.Add(Stopwatch.GetTimestamp() - started);

                if (random.NextDouble() < settings.ReadBackShare)
                {
                    ItemRead? back;
                    var readBackStarted = Stopwatch.GetTimestamp();
                    if (variant.SplitsReads)
                    {
                        await using var readContext = variant.CreateReadContext();
                        back = await TimedReadAsync(readContext, item.Id, stats, ct);
                    }
                    else
                    {
                        back = await TimedReadAsync(unit, item.Id, stats, ct);
                    }

                    stats.ReadBackTicks.Add(Stopwatch.GetTimestamp() - readBackStarted);

                    stats.ReadBacks++;
                    if (back is null)
                    {
                        // Only the standby can miss a row the primary has committed: count the read as served there.
                        stats.ReadBackMisses++;
                        stats.StandbyReads++;
                    }
                    else if (back.ServerPort != _standbyPort)
                    {
                        stats.ReadBacksOnPrimary++;
                    }
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception exception)
            {
                stats.Error($"{exception.GetType().Name}: {exception.GetBaseException().Message}");
            }
        }

        return stats;
    }

    private async Task<ItemRead?> TimedReadAsync(ShopContext db, Guid id, WorkerStats stats, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        var row = await db.ReadAsync(id, ct);
        stats.ReadTicks.Add(Stopwatch.GetTimestamp() - started);
        if (row?.ServerPort == _standbyPort)
        {
            stats.StandbyReads++;
        }

        return row;
    }

    private static double Percentile(long[] ticks, double quantile)
    {
        if (ticks.Length == 0)
        {
            return 0;
        }

        Array.Sort(ticks);
        var index = (int)Math.Ceiling(quantile * ticks.Length) - 1;
        return ticks[Math.Clamp(index, 0, ticks.Length - 1)] * 1000.0 / Stopwatch.Frequency;
    }

    /// <summary>One slice of a variant's run.</summary>
    internal sealed record Measurement(double Seconds, IReadOnlyList<WorkerStats> Workers);

    internal sealed class WorkerStats
    {
        public List<long> ReadBackTicks { get; } = new(capacity: 4 * 1024);

        public List<long> ReadTicks { get; } = new(capacity: 64 * 1024);

        public List<long> WriteTicks { get; } = new(capacity: 8 * 1024);

        public long StandbyReads { get; set; }

        public long ReadBacks { get; set; }

        public long ReadBackMisses { get; set; }

        public long ReadBacksOnPrimary { get; set; }

        public long Errors { get; private set; }

        public string? FirstError { get; private set; }

        public void Error(string message)
        {
            Errors++;
            FirstError ??= message;
        }
    }
}
