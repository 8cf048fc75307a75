using System.Collections.Concurrent;
using System.Diagnostics;
using EfReplicaInterceptor.Health;
using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Topology;

/// <summary>
/// Issue 20, by hand with real servers: node A the primary, node B its standby, both listed as replicas (what an HA
/// cluster's configuration says), then a planned switchover under 4 readers and 2 writers with read-backs: stop A
/// (<c>-m fast</c>), promote B, rebuild A as B's standby. Judged by the servers: where each read ran
/// (<c>inet_server_port()</c>, <c>pg_is_in_recovery()</c>), what the new primary holds, and the library's own events.
/// </summary>
[NonParallelizable]
public sealed class PlannedSwitchoverTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);

    /// <summary>Events that name a replica's transition in or out of the rotation: each must be one that happened.</summary>
    private static readonly int[] RotationEvents = [2000, 2001, 2003, 2007];

    private static async Task<PostgresReplicaSet> StartServersAsync()
    {
        var servers = await ShopServers.StartAsync(standbys: 1);
        if (servers.IsExternal || servers.Backend != PostgresBackend.Local)
        {
            await servers.DisposeAsync();
            Assert.Ignore("A switchover by hand needs local servers started by the tests (stop, promote, rebuild).");
        }

        return servers;
    }

    /// <summary>Every node listed as a replica, named for its node (not its role, which changes).</summary>
    private static void ListEveryNode(EfReplicaOptions options, PostgresReplicaSet servers, string primary)
    {
        options.Primary = primary;
        options.Replicas.Clear();
        options.Replicas.Add(new ReplicaEndpointOptions { Name = "node-a", ConnectionString = TestCluster.WithPool(servers.Primary.ConnectionString, TestCluster.DefaultMaxPoolSize) });
        options.Replicas.Add(new ReplicaEndpointOptions { Name = "node-b", ConnectionString = TestCluster.WithPool(servers.Standby.ConnectionString, TestCluster.DefaultMaxPoolSize) });
        options.HealthCheckInterval = Interval;

        // The bound of a read's wait for the topology. The switchover by hand (pg_ctl stop -w, then promote) takes 0.2 s on a
        // quiet machine and up to 2 s on a loaded one: a margin for the machine, not for the library.
        options.Failover.ReadDeadline = TimeSpan.FromSeconds(6);
    }

    [Test]
    public async Task A_single_host_primary_listed_among_the_replicas_starts_and_is_healthy()
    {
        await using var servers = await StartServersAsync();
        await using var cluster = await TestCluster.CreateAsync(servers, options => ListEveryNode(options, servers, TestCluster.WithPool(servers.Primary.ConnectionString, TestCluster.DefaultMaxPoolSize)));
        var check = new EfReplicaHealthCheck(cluster.Cluster);

        await Poll.Until(() => Status(check) == HealthStatus.Healthy, TimeSpan.FromSeconds(10));
        var sides = new List<ServerSide>();
        for (var i = 0; i < 20; i++)
        {
            await using var context = cluster.NewContext();
            sides.Add(await context.WhereAmI().SingleAsync());
        }

        var health = await check.CheckHealthAsync(new HealthCheckContext());
        Assert.Multiple(() =>
        {
            Assert.That(health.Status, Is.EqualTo(HealthStatus.Healthy), health.Description);
            Assert.That(health.Data["replica:node-a"], Does.StartWith("the primary"));
            Assert.That(sides, Is.All.EqualTo(new ServerSide(servers.Standby.Port, InRecovery: true)), "plain reads go to the standby only");
            Assert.That(Events(cluster, 2020), Is.EqualTo(new[] { "node-a" }), "node-a is announced once as the primary");
            Assert.That(cluster.Recorder.AllEvents.Where(e => RotationEvents.Contains(e.EventId) && e.Message.Contains("node-a", StringComparison.Ordinal)), Is.Empty,
                "no rotation event for the node that is the primary");
        });
    }

    [Test]
    public async Task A_planned_switchover_under_four_readers_and_two_writers_fails_no_read()
    {
        await using var servers = await StartServersAsync();
        var nodeA = servers.Primary;
        var nodeB = servers.Standby;
        await using var cluster = await TestCluster.CreateAsync(servers, options => ListEveryNode(options, servers, TestCluster.WithPool(servers.MultiHostPrimaryConnectionString, TestCluster.DefaultMaxPoolSize)));
        var check = new EfReplicaHealthCheck(cluster.Cluster);
        await Poll.Until(() => Status(check) == HealthStatus.Healthy, TimeSpan.FromSeconds(10));
        var healthyBefore = await check.CheckHealthAsync(new HealthCheckContext());

        var run = new Workload(cluster);
        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource();
        var tasks = Enumerable.Range(0, 4).Select(_ => Task.Run(() => run.ReadAsync(clock, stop.Token)))
            .Concat(Enumerable.Range(0, 2).Select(writer => Task.Run(() => run.WriteAsync(writer, clock, stop.Token))))
            .ToArray();

        await Poll.Until(() => run.Writes >= 20 && run.Reads.Count >= 100, TimeSpan.FromSeconds(20));
        var stoppedAt = clock.Elapsed;
        await nodeA.StopAsync(StopMode.Fast);
        await nodeB.PromoteAsync();
        var promotedAt = clock.Elapsed;
        await Poll.Until(() => run.SucceededAfter(promotedAt) is not null, TimeSpan.FromSeconds(20));
        var writesBack = run.SucceededAfter(promotedAt)!.Value - promotedAt;

        await servers.RebuildAsStandbyAsync(nodeA, nodeB);
        var rebuiltAt = clock.Elapsed;
        await Poll.Until(() => run.Reads.Any(read => read.At > rebuiltAt && read.Side == new ServerSide(nodeA.Port, InRecovery: true)), TimeSpan.FromSeconds(20));
        var firstReadOnA = run.Reads.Where(read => read.At > rebuiltAt && read.Side.Port == nodeA.Port).Min(read => read.At) - rebuiltAt;
        await Poll.Until(() => Status(check) == HealthStatus.Healthy, TimeSpan.FromSeconds(20));
        var healthyAfter = await check.CheckHealthAsync(new HealthCheckContext());
        var writesAtHealthy = run.Writes;
        await Poll.Until(() => run.Writes >= writesAtHealthy + 20, TimeSpan.FromSeconds(20)); // the workload goes on after
        await stop.CancelAsync();
        await Task.WhenAll(tasks);

        // The truth, from the new primary: every acknowledged write is there, none reported as not applied is.
        var present = new HashSet<Guid>();
        await using (var connection = new NpgsqlConnection(nodeB.ConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT id FROM orders", connection);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                present.Add(reader.GetGuid(0));
            }
        }

        var onA = run.Reads.Count(read => read.At > rebuiltAt && read.Side == new ServerSide(nodeA.Port, InRecovery: true));
        TestContext.Out.WriteLine(
            $"{run.Reads.Count} reads and {run.ReadBacks} read-backs: {run.FailedReads.Count} failed; {run.Writes} writes acknowledged, {run.NotApplied.Count} not applied, " +
            $"{run.Unknown.Count} unknown ({run.Unknown.Count(present.Contains)} present), {run.Untyped.Count} untyped; writes succeeded again {writesBack.TotalMilliseconds:0} ms " +
            $"after the promotion; A rebuilt {(rebuiltAt - promotedAt).TotalMilliseconds:0} ms after it, first read on A {firstReadOnA.TotalMilliseconds:0} ms after that, {onA} reads on A; " +
            $"read-your-writes misses: {run.Misses}; A stopped at {stoppedAt.TotalMilliseconds:0} ms, B promoted at {promotedAt.TotalMilliseconds:0} ms");
        foreach (var failure in run.FailedReads.Concat(run.Untyped).Take(5))
        {
            TestContext.Out.WriteLine($"  {failure}");
        }

        var roleEvents = cluster.Recorder.AllEvents.Where(e => e.EventId is >= 2000 and < 2100 && e.EventId is not (2002 or 2008)).Select(e => $"{e.EventId} {e.Message}");
        TestContext.Out.WriteLine("topology events:\n  " + string.Join("\n  ", roleEvents));
        Assert.Multiple(() =>
        {
            Assert.That(run.FailedReads, Is.Empty, "a read failed to the caller");
            Assert.That(run.Untyped, Is.Empty, "every failed write is typed");
            Assert.That(run.Misses, Is.Zero, "a read-back missed its own write");
            Assert.That(run.Acknowledged.Where(id => !present.Contains(id)), Is.Empty, "an acknowledged write is missing on the new primary");
            Assert.That(run.NotApplied.Where(present.Contains), Is.Empty, "a write reported as not applied was applied");
            Assert.That(writesBack, Is.LessThan(TimeSpan.FromSeconds(5)), "writes must succeed again soon after B is writable");
            Assert.That(healthyBefore.Status, Is.EqualTo(HealthStatus.Healthy), healthyBefore.Description);
            Assert.That(healthyAfter.Status, Is.EqualTo(HealthStatus.Healthy), healthyAfter.Description);
            Assert.That(healthyAfter.Data["replica:node-b"], Does.StartWith("the primary"));
            Assert.That(onA, Is.Positive, "reads reach A once it is a standby");

            // Only transitions that happened: A is the primary (at start), B becomes it, A becomes B's standby; nothing
            // "left", "rejoined" or "kept out" for a node that was never in rotation in that role.
            Assert.That(Events(cluster, 2020), Is.EqualTo(new[] { "node-a", "node-b" }));
            Assert.That(Events(cluster, 2021), Is.EqualTo(new[] { "node-a" }));
            Assert.That(cluster.Recorder.AllEvents.Where(e => e.EventId is 2000 or 2001 or 2003).Select(e => e.Message), Is.Empty);
        });
    }

    private static HealthStatus Status(EfReplicaHealthCheck check) => check.CheckHealthAsync(new HealthCheckContext()).GetAwaiter().GetResult().Status;

    /// <summary>The replicas named by the events with <paramref name="eventId"/>, in order.</summary>
    private static string[] Events(TestCluster cluster, int eventId)
        => [.. cluster.Recorder.AllEvents.Where(e => e.EventId == eventId).Select(e => e.Message.Split('\'')[1])];

    private sealed record Read(TimeSpan At, ServerSide Side);

    /// <summary>Readers and writers with read-backs, recording where every read ran and what became of every write.</summary>
    private sealed class Workload(TestCluster cluster)
    {
        private readonly ConcurrentQueue<(Guid Id, TimeSpan At)> _acknowledged = new();
        private int _misses;
        private int _readBacks;

        public ConcurrentQueue<Read> Reads { get; } = new();

        public ConcurrentQueue<string> FailedReads { get; } = new();

        public ConcurrentQueue<Guid> NotApplied { get; } = new();

        public ConcurrentQueue<Guid> Unknown { get; } = new();

        public ConcurrentQueue<string> Untyped { get; } = new();

        public IEnumerable<Guid> Acknowledged => _acknowledged.Select(write => write.Id);

        public int Writes => _acknowledged.Count;

        public int Misses => Volatile.Read(ref _misses);

        public int ReadBacks => Volatile.Read(ref _readBacks);

        /// <summary>The exception and its inner ones, type and message each (no stack: the test's output stays readable).</summary>
        private static string Describe(Exception exception)
        {
            var parts = new List<string>();
            for (Exception? current = exception; current is not null; current = current.InnerException)
            {
                parts.Add($"{current.GetType().Name}: {current.Message}");
            }

            return string.Join(" -> ", parts);
        }

        public TimeSpan? SucceededAfter(TimeSpan at) => _acknowledged.Where(write => write.At > at).Select(write => (TimeSpan?)write.At).Min();

        public async Task ReadAsync(Stopwatch clock, CancellationToken stop)
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await using var context = cluster.NewContext();
                    Reads.Enqueue(new Read(clock.Elapsed, await context.WhereAmI().SingleAsync(CancellationToken.None)));
                }
                catch (Exception exception)
                {
                    FailedReads.Enqueue($"read at {clock.Elapsed.TotalMilliseconds:0} ms: {Describe(exception)}");
                }
            }
        }

        public async Task WriteAsync(int writer, Stopwatch clock, CancellationToken stop)
        {
            while (!stop.IsCancellationRequested)
            {
                var id = Guid.NewGuid();
                await using var context = cluster.NewContext();
                try
                {
                    context.Orders.Add(new Order { Id = id, Writer = writer });
                    await context.SaveChangesAsync(CancellationToken.None);
                    _acknowledged.Enqueue((id, clock.Elapsed));
                }
                catch (EfReplicaFailoverException failover)
                {
                    (failover.Outcome == FailoverOutcome.NotApplied ? NotApplied : Unknown).Enqueue(id);
                    await Task.Delay(20, CancellationToken.None);
                    continue;
                }
                catch (Exception exception)
                {
                    Untyped.Enqueue($"write at {clock.Elapsed.TotalMilliseconds:0} ms: {Describe(exception)}");
                    await Task.Delay(20, CancellationToken.None);
                    continue;
                }

                try
                {
                    Interlocked.Increment(ref _readBacks);
                    if (!await context.Orders.AsNoTracking().AnyAsync(order => order.Id == id, CancellationToken.None))
                    {
                        Interlocked.Increment(ref _misses);
                    }
                }
                catch (Exception exception)
                {
                    FailedReads.Enqueue($"read-back at {clock.Elapsed.TotalMilliseconds:0} ms: {Describe(exception)}");
                }
            }
        }
    }
}
