using System.Collections.Concurrent;
using System.Globalization;
using EfReplicaInterceptor.HistoryChecker;
using EfReplicaInterceptor.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Patroni;

/// <summary>A row of <c>patroni_writes</c>: writer <see cref="Writer"/>'s <see cref="Seq"/>-th write (each writer writes its sequence in order).</summary>
public sealed class PatroniWrite
{
    public int Writer { get; set; }

    public long Seq { get; set; }
}

/// <summary>What a read returns: the server that ran it, its role, and the newest write of each writer it can see.</summary>
public sealed class PatroniRead
{
    public int Port { get; set; }

    public bool InRecovery { get; set; }

    public long W0 { get; set; }

    public long W1 { get; set; }
}

/// <summary>The Patroni scenarios' model: one table of writes, numbered per writer.</summary>
public sealed class PatroniLoadContext(DbContextOptions<PatroniLoadContext> options) : DbContext(options)
{
    /// <summary>Run once on the leader.</summary>
    public const string Schema = "CREATE TABLE patroni_writes (writer int NOT NULL, seq bigint NOT NULL, PRIMARY KEY (writer, seq))";

    /// <summary>
    /// The read every reader and every read-back runs: the server's port and role and, per writer, the newest write it sees. A
    /// writer commits its writes in sequence order, and a standby replays commits in the primary's order, so a read sees write
    /// <c>(w, s)</c> exactly when the newest of writer <c>w</c> it returns is at least <c>s</c>.
    /// </summary>
    public const string ReadSql = """
        SELECT inet_server_port() AS "Port", pg_is_in_recovery() AS "InRecovery",
               coalesce((SELECT max(seq) FROM patroni_writes WHERE writer = 0), 0) AS "W0",
               coalesce((SELECT max(seq) FROM patroni_writes WHERE writer = 1), 0) AS "W1"
        """;

    public DbSet<PatroniWrite> Writes => Set<PatroniWrite>();

    /// <summary>Runs <see cref="ReadSql"/> through EF (a read: the library routes it).</summary>
    public Task<List<PatroniRead>> ReadAsync() => Database.SqlQueryRaw<PatroniRead>(ReadSql).ToListAsync();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
        => modelBuilder.Entity<PatroniWrite>(write =>
        {
            write.ToTable("patroni_writes");
            write.HasKey(w => new { w.Writer, w.Seq });
            write.Property(w => w.Writer).HasColumnName("writer");
            write.Property(w => w.Seq).HasColumnName("seq").ValueGeneratedNever();
        });
}

/// <summary>How a write ended, as the caller saw it.</summary>
public enum PatroniWriteOutcome
{
    Succeeded,
    NotApplied,
    Unknown,
    Untyped,
}

/// <summary>One write of the load: writer, sequence number, outcome and when it ran (on the load's clock).</summary>
public sealed record PatroniWriteRecord(int Writer, long Seq, PatroniWriteOutcome Outcome, TimeSpan Start, TimeSpan End, string Detail);

/// <summary>One read of the load: by a reader or a writer's read-back; failed when <see cref="Error"/> is set.</summary>
public sealed record PatroniReadRecord(string Scope, bool ReadBack, TimeSpan Start, TimeSpan End, PatroniRead? Result, string? Error);

/// <summary>
/// The scenarios' application load on one <see cref="EfReplicaCluster"/>: 4 readers and 2 writers through async EF contexts and
/// the library, as an application would use it. Readers 0 and 1 read 8 times per context (the context's scope), readers 2 and 3
/// open a context per read inside an ambient <see cref="EfReplicaScope.BeginConsistency(string?)"/> of 8 reads. Each writer adds
/// its next row with <c>SaveChangesAsync</c> and, when that succeeds, reads it back in the same context. Every operation goes into
/// a <see cref="HistoryRecorder"/> (registers <c>w0</c>, <c>w1</c>: the newest write of each writer) for the history checker, and
/// into this class's own records for the failover judgements.
/// </summary>
public sealed class PatroniLoad : IAsyncDisposable
{
    public const int Readers = 4;
    public const int Writers = 2;
    private const int ReadsPerScope = 8;

    private readonly DbContextOptions<PatroniLoadContext> _options;
    private readonly ConcurrentQueue<PatroniWriteRecord> _writes = new();
    private readonly ConcurrentQueue<PatroniReadRecord> _reads = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _workers = [];

    private PatroniLoad(EfReplicaCluster cluster)
    {
        Cluster = cluster;
        _options = new DbContextOptionsBuilder<PatroniLoadContext>()
            .UseNpgsql(cluster.PrimaryDataSource)
            .UseEfReplicaRouting(cluster)
            .ConfigureWarnings(warnings => warnings.Ignore(CoreEventId.ManyServiceProvidersCreatedWarning))
            .Options;
    }

    public EfReplicaCluster Cluster { get; }

    /// <summary>The history of every operation, for <see cref="HistoryChecks.Check"/>; its clock is the load's clock.</summary>
    public HistoryRecorder History { get; } = new();

    /// <summary>The load's clock.</summary>
    public TimeSpan Now => History.Now;

    public IReadOnlyList<PatroniWriteRecord> WriteRecords => [.. _writes];

    public IReadOnlyList<PatroniReadRecord> ReadRecords => [.. _reads];

    /// <summary>Starts the readers and writers; writers number their writes from <paramref name="firstSeq"/>.</summary>
    /// <param name="cluster">The library under test.</param>
    /// <param name="firstSeq">Each writer's first sequence number (above every earlier run's).</param>
    /// <param name="writers">How many writers, 0 to <see cref="Writers"/>.</param>
    public static PatroniLoad Start(EfReplicaCluster cluster, long firstSeq, int writers = Writers)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(writers);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(writers, Writers);
        var load = new PatroniLoad(cluster);
        for (var reader = 0; reader < Readers; reader++)
        {
            var number = reader;
            load._workers.Add(Task.Run(() => load.ReaderAsync(number), CancellationToken.None));
        }

        for (var writer = 0; writer < writers; writer++)
        {
            var number = writer;
            load._workers.Add(Task.Run(() => load.WriterAsync(number, firstSeq), CancellationToken.None));
        }

        return load;
    }

    /// <summary>Stops the load; operations in flight finish.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_workers);
    }

    /// <summary>The highest sequence number any writer used.</summary>
    public long LastSeq => _writes.IsEmpty ? 0 : _writes.Max(w => w.Seq);

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stop.Dispose();
    }

    private async Task ReaderAsync(int number)
    {
        for (var scope = 1; !_stop.IsCancellationRequested; scope++)
        {
            var name = string.Create(CultureInfo.InvariantCulture, $"reader{number}.{scope}");
            if (number < 2)
            {
                await using var context = new PatroniLoadContext(_options);
                for (var i = 0; i < ReadsPerScope && !_stop.IsCancellationRequested; i++)
                {
                    await ReadAsync(context, name, readBack: false);
                }
            }
            else
            {
                using var consistency = EfReplicaScope.BeginConsistency();
                for (var i = 0; i < ReadsPerScope && !_stop.IsCancellationRequested; i++)
                {
                    await using var context = new PatroniLoadContext(_options);
                    await ReadAsync(context, name, readBack: false);
                }
            }
        }
    }

    private async Task WriterAsync(int writer, long firstSeq)
    {
        var register = string.Create(CultureInfo.InvariantCulture, $"w{writer}");
        for (var seq = firstSeq; !_stop.IsCancellationRequested; seq++)
        {
            var scope = string.Create(CultureInfo.InvariantCulture, $"writer{writer}.{seq}");
            await using var context = new PatroniLoadContext(_options);
            var start = Now;
            try
            {
                context.Writes.Add(new PatroniWrite { Writer = writer, Seq = seq });
                await context.SaveChangesAsync();
                _writes.Enqueue(new(writer, seq, PatroniWriteOutcome.Succeeded, start, Now, ""));
                History.Record(scope, OperationKind.Write, new Dictionary<string, long> { [register] = seq }, start, server: "primary");
            }
#pragma warning disable CA1031 // every failure is recorded and judged by the test
            catch (Exception error)
#pragma warning restore CA1031
            {
                var end = Now;
                var outcome = EfReplicaFailoverException.Find(error) is { } failover
                    ? failover.Outcome == FailoverOutcome.NotApplied ? PatroniWriteOutcome.NotApplied : PatroniWriteOutcome.Unknown
                    : PatroniWriteOutcome.Untyped;
                _writes.Enqueue(new(writer, seq, outcome, start, end, Describe(error)));
                History.Record(scope, OperationKind.Write, new Dictionary<string, long>(), start, OperationOutcome.Failed);
                await Task.Delay(10, CancellationToken.None);
                continue;
            }

            await ReadAsync(context, scope, readBack: true);
        }
    }

    private async Task ReadAsync(PatroniLoadContext context, string scope, bool readBack)
    {
        var start = Now;
        try
        {
            var row = (await context.ReadAsync()).Single();
            _reads.Enqueue(new(scope, readBack, start, Now, row, null));
            History.Record(scope, OperationKind.Read, new Dictionary<string, long> { ["w0"] = row.W0, ["w1"] = row.W1 }, start, server: row.Port.ToString(CultureInfo.InvariantCulture));
        }
#pragma warning disable CA1031 // every failure is recorded and judged by the test
        catch (Exception error)
#pragma warning restore CA1031
        {
            _reads.Enqueue(new(scope, readBack, start, Now, null, Describe(error)));
            History.Record(scope, OperationKind.Read, new Dictionary<string, long>(), start, OperationOutcome.Failed);
            await Task.Delay(10, CancellationToken.None);
        }
    }

    private static string Describe(Exception error)
        => $"{error.GetType().Name} / {error.GetBaseException().GetType().Name}: {error.GetBaseException().Message.Split('\n')[0]}";
}

/// <summary>The scenarios' judgements of one load run against the final primary's rows.</summary>
public sealed class PatroniLoadReport
{
    private readonly PatroniLoad _load;
    private readonly HashSet<(int Writer, long Seq)> _present;

    private PatroniLoadReport(PatroniLoad load, HashSet<(int Writer, long Seq)> present, TimeSpan lagBudget)
    {
        _load = load;
        _present = present;
        LagBudget = lagBudget;
        Writes = load.WriteRecords;
        Reads = load.ReadRecords;
        History = HistoryChecks.Check(FilterLostWrites(load.History.Snapshot()));
        ComputeStaleness();
    }

    public TimeSpan LagBudget { get; }

    public IReadOnlyList<PatroniWriteRecord> Writes { get; }

    public IReadOnlyList<PatroniReadRecord> Reads { get; }

    /// <summary>Read-your-writes and monotonic reads per scope (reads that returned a write lost in the failover are left out).</summary>
    public CheckResult History { get; }

    public IReadOnlyList<PatroniReadRecord> FailedReads => [.. Reads.Where(r => r.Error is not null)];

    public int Count(PatroniWriteOutcome outcome) => Writes.Count(w => w.Outcome == outcome);

    /// <summary>Writes reported NotApplied that the final primary has: must be none.</summary>
    public IReadOnlyList<PatroniWriteRecord> NotAppliedButPresent => [.. Writes.Where(w => w.Outcome == PatroniWriteOutcome.NotApplied && _present.Contains((w.Writer, w.Seq)))];

    /// <summary>Writes reported Unknown, and how many of them the final primary has.</summary>
    public (int Present, int Absent) UnknownChecked
    {
        get
        {
            var unknown = Writes.Where(w => w.Outcome == PatroniWriteOutcome.Unknown).ToList();
            var present = unknown.Count(w => _present.Contains((w.Writer, w.Seq)));
            return (present, unknown.Count - present);
        }
    }

    /// <summary>Acknowledged writes the final primary lacks (asynchronous replication loses them when the leader dies).</summary>
    public IReadOnlyList<PatroniWriteRecord> AcknowledgedButLost => [.. Writes.Where(w => w.Outcome == PatroniWriteOutcome.Succeeded && !_present.Contains((w.Writer, w.Seq)))];

    /// <summary>Reads that missed a write acknowledged more than <see cref="LagBudget"/> before they started and present on the final primary.</summary>
    public IReadOnlyList<(PatroniReadRecord Read, TimeSpan Staleness)> StaleReads { get; private set; } = [];

    public TimeSpan WorstStaleness => StaleReads.Count == 0 ? TimeSpan.Zero : StaleReads.Max(s => s.Staleness);

    /// <summary>Successful reads per server port.</summary>
    public IReadOnlyDictionary<int, int> ReadsByPort => Reads.Where(r => r.Result is not null).GroupBy(r => r.Result!.Port).ToDictionary(g => g.Key, g => g.Count());

    /// <summary>The end of the first successful write that ended after <paramref name="at"/>, minus <paramref name="at"/>; null if none.</summary>
    public TimeSpan? WritesBackAfter(TimeSpan at)
        => Writes.Where(w => w.Outcome == PatroniWriteOutcome.Succeeded && w.End >= at).Select(w => (TimeSpan?)(w.End - at)).Min();

    /// <summary>Reads the final primary's rows (through <paramref name="leader"/>'s own connection string) and judges the load.</summary>
    public static async Task<PatroniLoadReport> CreateAsync(PatroniLoad load, PatroniMember leader, TimeSpan lagBudget)
    {
        // Its own unpooled connection (a promotion or a restart ends pooled sessions), tried again a few times.
        var connectionString = new NpgsqlConnectionStringBuilder(leader.ConnectionString) { Pooling = false }.ConnectionString;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var present = new HashSet<(int, long)>();
                await using var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync();
                await using var command = new NpgsqlCommand("SELECT writer, seq FROM patroni_writes", connection);
                await using var reader = await command.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    present.Add((reader.GetInt32(0), reader.GetInt64(1)));
                }

                return new PatroniLoadReport(load, present, lagBudget);
            }
            catch (NpgsqlException) when (attempt < 5)
            {
                await Task.Delay(500);
            }
        }
    }

    /// <summary>Every figure, one line each, for the test output.</summary>
    public string Describe()
    {
        var lines = new List<string>
        {
            $"reads: {Reads.Count} ({Reads.Count(r => r.ReadBack)} read-backs), failed {FailedReads.Count} ({FailedReads.Count(r => r.ReadBack)} read-backs); by port: {string.Join(", ", ReadsByPort.OrderBy(p => p.Key).Select(p => $"{p.Key}: {p.Value}"))}",
            $"writes: {Writes.Count}: {Count(PatroniWriteOutcome.Succeeded)} succeeded, {Count(PatroniWriteOutcome.NotApplied)} NotApplied ({NotAppliedButPresent.Count} present), {Count(PatroniWriteOutcome.Unknown)} Unknown ({UnknownChecked.Present} present, {UnknownChecked.Absent} absent), {Count(PatroniWriteOutcome.Untyped)} untyped; acknowledged but lost: {AcknowledgedButLost.Count}",
            $"history: {History.Describe(3)}",
            $"reads older than {LagBudget.TotalSeconds:0.###} s (the lag budget and one probe interval): {StaleReads.Count}, worst {WorstStaleness.TotalSeconds:0.00} s stale",
        };
        lines.AddRange(FailedReads.GroupBy(r => r.Error).Select(g => $"  failed read x{g.Count()}: {g.Key}"));
        lines.AddRange(Writes.Where(w => w.Outcome != PatroniWriteOutcome.Succeeded).GroupBy(w => $"{w.Outcome}: {w.Detail}").Select(g => $"  write x{g.Count()} {g.Key}"));
        lines.AddRange(StaleReads.Take(5).Select(s => $"  stale read at {s.Read.Start.TotalSeconds:0.000} s on port {s.Read.Result!.Port} (in recovery {s.Read.Result.InRecovery}): {s.Staleness.TotalSeconds:0.00} s behind"));
        return string.Join(Environment.NewLine, lines);
    }

    /// <summary>
    /// Drops writes absent from the final primary and reads whose newest write of a writer is one of those: what a failover lost
    /// (asynchronous replication) is no session guarantee's business. A read whose newest write is present saw a real state.
    /// </summary>
    private IEnumerable<Operation> FilterLostWrites(IReadOnlyList<Operation> history)
    {
        var lost = _load.WriteRecords
            .Where(w => w.Outcome != PatroniWriteOutcome.NotApplied && !_present.Contains((w.Writer, w.Seq)))
            .Select(w => (string.Create(CultureInfo.InvariantCulture, $"w{w.Writer}"), w.Seq))
            .ToHashSet();
        return history.Where(op => op.Outcome != OperationOutcome.Ok || !op.Values.Any(v => lost.Contains((v.Key, v.Value))));
    }

    private void ComputeStaleness()
    {
        // Per writer: its acknowledged writes that the final primary has, in sequence (= commit) order.
        var acknowledged = Enumerable.Range(0, PatroniLoad.Writers)
            .Select(writer => Writes.Where(w => w.Writer == writer && w.Outcome == PatroniWriteOutcome.Succeeded && _present.Contains((w.Writer, w.Seq))).OrderBy(w => w.Seq).ToArray())
            .ToArray();
        var stale = new List<(PatroniReadRecord, TimeSpan)>();
        foreach (var read in Reads.Where(r => r.Result is not null))
        {
            var worst = TimeSpan.Zero;
            for (var writer = 0; writer < PatroniLoad.Writers; writer++)
            {
                var seen = writer == 0 ? read.Result!.W0 : read.Result!.W1;

                // The oldest acknowledged write this read missed: the first one above what it saw.
                var writes = acknowledged[writer];
                var index = Array.FindIndex(writes, w => w.Seq > seen);
                if (index >= 0 && read.Start - writes[index].End > worst)
                {
                    worst = read.Start - writes[index].End;
                }
            }

            if (worst > LagBudget)
            {
                stale.Add((read, worst));
            }
        }

        StaleReads = stale;
    }
}
