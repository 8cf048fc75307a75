using System.Collections.Concurrent;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Consistency;

/// <summary>
/// Monotonic reads and consistent multi-command operations over two real standbys with different lag: one applies WAL
/// 1 s late (<c>recovery_min_apply_delay</c>), the other streams as fast as it can. A counter written every 20 ms on the
/// primary is read 200 times by one scope (a lease, an ambient scope, a chain of restored tokens): no read may return an
/// older value than an earlier read of the scope. Parents inserted with their children in one transaction are read back
/// with <c>AsSplitQuery</c>: no result may have a parent without its children. With <see cref="EfReplicaOptions.MonotonicReads"/>
/// off the same loops must see violations (the measurement can fail).
/// </summary>
[NonParallelizable]
public sealed class MonotonicReadsTests
{
    private const int Reads = 200;
    private const int ControlReads = 60; // with MonotonicReads off: enough to show violations
    private const int ChildrenPerParent = 5;
    private static readonly TimeSpan ApplyDelay = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan WritePeriod = TimeSpan.FromMilliseconds(20);
    private PostgresReplicaSet _servers = null!;

    public enum Scope
    {
        Lease,
        Ambient,
        Token,
    }

    [OneTimeSetUp]
    public async Task StartServers()
    {
        _servers = await ShopServers.StartAsync(standbys: 2);
        await _servers.Primary.ExecuteAsync(SplitContext.Schema);
        foreach (var standby in _servers.Standbys)
        {
            await _servers.WaitForReplayAsync(standby);
        }

        await _servers.Standbys[1].SetRecoveryMinApplyDelayAsync(ApplyDelay);
    }

    [OneTimeTearDown]
    public async Task StopServers() => await _servers.DisposeAsync();

    [Test]
    public async Task Counter_reads_never_go_back([Values] Scope scope, [Values] bool monotonic)
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options => options.MonotonicReads = monotonic);
        await using var writer = new CounterWriter(_servers.Primary, WritePeriod);
        await Task.Delay(ApplyDelay); // the delayed standby is a full second behind from the first read on

        var reads = await ReadCounter(cluster, scope, new ConcurrentQueue<(long, int)>(), monotonic ? Reads : ControlReads);

        var violations = 0;
        long highest = 0;
        foreach (var (value, _) in reads)
        {
            violations += value < highest ? 1 : 0;
            highest = Math.Max(highest, value);
        }

        TestContext.Out.WriteLine($"{scope}, MonotonicReads={monotonic}: {violations} of {reads.Count} reads older than an earlier read; served by {Split(reads.Select(r => r.Port))}");
        if (monotonic)
        {
            Assert.That(violations, Is.Zero, "a read returned an older counter than an earlier read of the same scope");
        }
        else
        {
            Assert.That(violations, Is.GreaterThan(0), "the loop must be able to fail: per-command round-robin over a standby 1 s behind goes back");
        }
    }

    [TestCase(LoadBalancing.RoundRobin, true)]
    [TestCase(LoadBalancing.LeastLag, true)]
    [TestCase(LoadBalancing.RoundRobin, false)]
    public async Task Split_query_results_never_have_parents_without_their_children(LoadBalancing balancing, bool monotonic)
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options =>
        {
            options.MonotonicReads = monotonic;
            options.LoadBalancing = balancing;
        });
        var run = Guid.NewGuid();
        await using var writer = new FamilyWriter(_servers.Primary, run, WritePeriod);
        await Task.Delay(ApplyDelay);

        var options = new DbContextOptionsBuilder<SplitContext>();
        cluster.Configure(options);
        int broken = 0, orphanedParents = 0, parents = 0;
        var operations = monotonic ? Reads : ControlReads;
        for (var i = 0; i < operations; i++)
        {
            await using var context = new SplitContext(options.Options); // one lease per operation: its commands must agree
            var families = await context.Parents.AsNoTracking().Where(p => p.Run == run).Include(p => p.Children).AsSplitQuery().ToListAsync();
            var orphans = families.Count(p => p.Children.Count != ChildrenPerParent);
            broken += orphans > 0 ? 1 : 0;
            orphanedParents += orphans;
            parents += families.Count;
            await Task.Delay(5);
        }

        TestContext.Out.WriteLine($"{balancing}, MonotonicReads={monotonic}: {broken} of {operations} results had parents without their children ({orphanedParents} of {parents} parents); {writer.Written} families written");
        if (monotonic)
        {
            Assert.That(broken, Is.Zero, "a split query's second command saw older data than its first");
        }
        else
        {
            Assert.That(broken, Is.GreaterThan(0), "the loop must be able to fail: per-command round-robin splits the query over the two standbys");
        }
    }

    [Test]
    public async Task Reads_stay_monotonic_when_the_scope_s_replica_crashes_and_comes_back([Values] Scope scope)
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options => options.HealthCheckInterval = TimeSpan.FromMilliseconds(200));
        await using var writer = new CounterWriter(_servers.Primary, WritePeriod);
        await Task.Delay(ApplyDelay);
        var reads = new ConcurrentQueue<(long Value, int Port)>();
        if (scope != Scope.Ambient)
        {
            // Another scope's read takes the fast standby's turn: this scope starts on the delayed one, and its move to the
            // fast one is a move between two replicas.
            await using var bystander = cluster.NewContext();
            await ReadOnce(bystander);
        }

        var reader = ReadCounter(cluster, scope, reads, count: 400);

        // Crash (immediate stop, like a power cut) whichever standby served the scope's first reads, then start it again:
        // it comes back from its last restart point and may be behind what it served before.
        await Support.Poll.Until(() => reads.Count >= 50, TimeSpan.FromSeconds(30));
        var port = reads.Last().Port;
        var victim = _servers.Standbys.FirstOrDefault(s => s.Port == port);
        if (victim is not null)
        {
            await victim.StopAsync(StopMode.Immediate);
            await Task.Delay(300);
            await victim.StartAsync();
        }

        var all = await reader;
        var violations = 0;
        long highest = 0;
        foreach (var (value, _) in all)
        {
            violations += value < highest ? 1 : 0;
            highest = Math.Max(highest, value);
        }

        TestContext.Out.WriteLine($"{scope}: crashed {(victim is null ? "nothing (the scope was on the primary)" : victim.Name)}; {violations} of {all.Count} reads older than an earlier read; served by {Split(all.Select(r => r.Port))}");
        Assert.That(violations, Is.Zero, "a read returned an older counter than an earlier read of the same scope");
    }

    [Test]
    public async Task Scopes_are_spread_over_the_replicas_and_few_reads_stay_on_the_primary([Values] bool monotonic)
    {
        const int Requests = 200;
        using var counters = new RoundTrips();
        await using var cluster = await TestCluster.CreateAsync(_servers, options => options.MonotonicReads = monotonic);
        await using var writer = new CounterWriter(_servers.Primary, WritePeriod);
        var ports = new List<int>();
        for (var i = 0; i < Requests; i++)
        {
            // A request: one context; one in ten writes first; three reads.
            await using var context = cluster.NewContext();
            if (i % 10 == 0)
            {
                context.People.Add(new Person { Name = $"spread-{Guid.NewGuid():N}" });
                await context.SaveChangesAsync();
            }

            for (var read = 0; read < 3; read++)
            {
                ports.Add((await ReadOnce(context)).Port);
            }
        }

        var replicaShare = (double)ports.Count(p => p != _servers.Primary.Port) / ports.Count;
        TestContext.Out.WriteLine($"MonotonicReads={monotonic}: {ports.Count} reads in {Requests} requests (one in ten wrote): served by {Split(ports)} "
            + $"({replicaShare:P1} on replicas); primary position captures {counters.Captures} ({(double)counters.Captures / Requests:0.00} per request), replica position checks {counters.ReplayChecks}");
        var perStandby = _servers.Standbys.Select(s => ports.Count(p => p == s.Port)).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(replicaShare, Is.GreaterThanOrEqualTo(0.9), "reads of requests that did not write belong on the replicas");
            Assert.That(perStandby, Has.All.GreaterThan(ports.Count / 4), "requests are spread over both standbys");
        });
    }

    private static async Task<List<(long Value, int Port)>> ReadCounter(TestCluster cluster, Scope scope, ConcurrentQueue<(long Value, int Port)> reads, int count)
    {
        string? token = null;
        using var ambient = scope == Scope.Ambient ? EfReplicaScope.BeginConsistency() : null;
        await using var lease = scope == Scope.Lease ? cluster.NewContext() : null;
        for (var i = 0; i < count; i++)
        {
            (long Value, int Port) read;
            if (scope == Scope.Token)
            {
                // Each read is a request of its own that knows only the previous request's token.
                using var request = EfReplicaScope.BeginConsistency(token);
                await using var context = cluster.NewContext();
                read = await ReadOnce(context);
                token = await request.GetTokenAsync();
            }
            else if (lease is not null)
            {
                read = await ReadOnce(lease);
            }
            else
            {
                await using var context = cluster.NewContext();
                read = await ReadOnce(context);
            }

            reads.Enqueue(read);
            await Task.Delay(5);
        }

        return [.. reads];
    }

    private static async Task<(long Value, int Port)> ReadOnce(ShopContext context)
    {
        var row = await context.Ticks.OrderByDescending(t => t.Id).Select(t => new { t.Id, Port = ShopContext.ServerPort() }).FirstAsync();
        return (row.Id, row.Port);
    }

    private string Split(IEnumerable<int> ports)
    {
        var names = ports.GroupBy(p => p).ToDictionary(g => g.Key, g => g.Count());
        string Name(int port) => port == _servers.Primary.Port ? "primary" : _servers.Standbys.First(s => s.Port == port) == _servers.Standbys[1] ? "delayed standby" : "fast standby";
        return string.Join(", ", names.OrderBy(n => n.Key).Select(n => $"{Name(n.Key)} {n.Value}"));
    }

    /// <summary>The library's own round trips for consistency: primary position captures and replica position checks.</summary>
    private sealed class RoundTrips : IDisposable
    {
        private readonly System.Diagnostics.Metrics.MeterListener _listener = new();
        private long _captures;
        private long _checks;

        public RoundTrips()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == Diagnostics.EfReplicaDiagnostics.MeterName
                    && instrument.Name is Diagnostics.EfReplicaDiagnostics.PositionCapturesCounterName or Diagnostics.EfReplicaDiagnostics.ReplayChecksCounterName)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
            {
                if (instrument.Name == Diagnostics.EfReplicaDiagnostics.PositionCapturesCounterName)
                {
                    Interlocked.Add(ref _captures, value);
                }
                else
                {
                    Interlocked.Add(ref _checks, value);
                }
            });
            _listener.Start();
        }

        public long Captures => Interlocked.Read(ref _captures);

        public long ReplayChecks => Interlocked.Read(ref _checks);

        public void Dispose() => _listener.Dispose();
    }

    /// <summary>Inserts a tick on the primary every period (the counter is the newest tick's id).</summary>
    private sealed class CounterWriter(PostgresServer primary, TimeSpan period) : IAsyncDisposable
    {
        private readonly Support.TickWriter _ticks = new(primary, period);

        public ValueTask DisposeAsync() => _ticks.DisposeAsync();
    }

    /// <summary>Inserts a parent and its children in one transaction on the primary every period.</summary>
    private sealed class FamilyWriter : IAsyncDisposable
    {
        private readonly NpgsqlDataSource _dataSource;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;
        private int _written;

        public FamilyWriter(PostgresServer primary, Guid run, TimeSpan period)
        {
            _dataSource = NpgsqlDataSource.Create(primary.ConnectionString);
            _loop = Task.Run(async () =>
            {
                await using var connection = await _dataSource.OpenConnectionAsync();
                await using var insert = new NpgsqlCommand(
                    "WITH parent AS (INSERT INTO split_parents (run) VALUES ($1) RETURNING id) "
                    + $"INSERT INTO split_children (parent_id) SELECT id FROM parent, generate_series(1, {ChildrenPerParent})",
                    connection);
                insert.Parameters.Add(new NpgsqlParameter { Value = run });
                while (!_stop.IsCancellationRequested)
                {
                    await insert.ExecuteNonQueryAsync();
                    Interlocked.Increment(ref _written);
                    try
                    {
                        await Task.Delay(period, _stop.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }
            });
        }

        public int Written => Volatile.Read(ref _written);

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _loop;
            await _dataSource.DisposeAsync();
            _stop.Dispose();
        }
    }
}

/// <summary>The shop model plus parents with children, for split queries.</summary>
public sealed class SplitContext(DbContextOptions<SplitContext> options) : ShopDbContext(options)
{
    public new const string Schema = """
        CREATE TABLE split_parents (id serial PRIMARY KEY, run uuid NOT NULL);
        CREATE INDEX ON split_parents (run);
        CREATE TABLE split_children (id serial PRIMARY KEY, parent_id int NOT NULL REFERENCES split_parents (id));
        CREATE INDEX ON split_children (parent_id);
        """;

    public DbSet<SplitParent> Parents => Set<SplitParent>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        base.OnModelCreating(modelBuilder);
        modelBuilder.Entity<SplitParent>(parent =>
        {
            parent.ToTable("split_parents");
            parent.Property(p => p.Id).HasColumnName("id");
            parent.Property(p => p.Run).HasColumnName("run");
            parent.HasMany(p => p.Children).WithOne().HasForeignKey(c => c.ParentId);
        });
        modelBuilder.Entity<SplitChild>(child =>
        {
            child.ToTable("split_children");
            child.Property(c => c.Id).HasColumnName("id");
            child.Property(c => c.ParentId).HasColumnName("parent_id");
        });
    }
}

public sealed class SplitParent
{
    public int Id { get; set; }

    public Guid Run { get; set; }

    public List<SplitChild> Children { get; } = [];
}

public sealed class SplitChild
{
    public int Id { get; set; }

    public int ParentId { get; set; }
}
