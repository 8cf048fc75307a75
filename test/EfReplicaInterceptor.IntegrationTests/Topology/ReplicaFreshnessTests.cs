using System.Diagnostics;
using EfReplicaInterceptor.Health;
using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace EfReplicaInterceptor.IntegrationTests.Topology;

/// <summary>Lag is real (replay paused on the standby) and reads through the library never get data older than the budget allows.</summary>
[NonParallelizable]
public sealed class ReplicaFreshnessTests
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);

    /// <summary>Reading takes time and the writer's clock and the reader's are sampled apart; stated slack for both.</summary>
    private static readonly TimeSpan Margin = TimeSpan.FromMilliseconds(250);

    private PostgresReplicaSet _servers = null!;

    [OneTimeSetUp]
    public async Task StartServers()
    {
        _servers = await ShopServers.StartAsync();
    }

    [OneTimeTearDown]
    public async Task StopServers() => await _servers.DisposeAsync();

    private Task<TestCluster> Cluster(TimeSpan? budget = null) => TestCluster.CreateAsync(_servers, options =>
    {
        options.MaxReplicaLag = budget ?? Budget;
        options.HealthCheckInterval = Interval;
    });

    [Test]
    public async Task Reads_never_get_data_older_than_the_budget_plus_one_interval_while_replay_is_paused()
    {
        await using var cluster = await Cluster();
        await using var writer = new TickWriter(_servers.Primary, TimeSpan.FromMilliseconds(100));
        var worst = TimeSpan.Zero;
        int onReplica = 0, onPrimary = 0;
        TimeSpan? leftAfter = null, backAfter = null;
        var clock = Stopwatch.StartNew();
        var pausedAt = TimeSpan.Zero;
        var resumedAt = TimeSpan.Zero;

        async Task ReadOnce()
        {
            var newestCommitted = writer.LastCommitted;
            await using var context = cluster.NewContext();
            var row = await context.Ticks.OrderByDescending(t => t.Id)
                .Select(t => new { t.CreatedAt, Port = ShopContext.ServerPort() }).FirstAsync();
            var staleness = newestCommitted - row.CreatedAt.ToUniversalTime();
            if (staleness > worst)
            {
                worst = staleness;
            }

            if (row.Port == _servers.Standby.Port)
            {
                onReplica++;
                if (resumedAt > TimeSpan.Zero && backAfter is null)
                {
                    backAfter = clock.Elapsed - resumedAt;
                }
            }
            else
            {
                onPrimary++;
                if (pausedAt > TimeSpan.Zero && leftAfter is null)
                {
                    leftAfter = clock.Elapsed - pausedAt;
                }
            }
        }

        async Task ReadFor(TimeSpan duration)
        {
            var until = clock.Elapsed + duration;
            while (clock.Elapsed < until)
            {
                await ReadOnce();
                await Task.Delay(20);
            }
        }

        await ReadFor(TimeSpan.FromSeconds(1));
        await _servers.Standby.PauseReplayAsync();
        pausedAt = clock.Elapsed;
        await ReadFor(TimeSpan.FromSeconds(3));
        await _servers.Standby.ResumeReplayAsync();
        resumedAt = clock.Elapsed;
        while (backAfter is null && clock.Elapsed - resumedAt < TimeSpan.FromSeconds(10))
        {
            await ReadOnce();
            await Task.Delay(20);
        }

        var bound = Budget + Interval + Margin;
        TestContext.Out.WriteLine($"worst staleness {worst.TotalMilliseconds:0} ms (bound {bound.TotalMilliseconds:0} ms = budget {Budget.TotalMilliseconds:0} + interval {Interval.TotalMilliseconds:0} + margin {Margin.TotalMilliseconds:0}); " +
                                  $"reads: {onReplica} on the replica, {onPrimary} on the primary; left rotation {leftAfter?.TotalMilliseconds:0} ms after the pause, " +
                                  $"back {backAfter?.TotalMilliseconds:0} ms after the resume; {writer.Written} rows written");
        Assert.Multiple(() =>
        {
            Assert.That(worst, Is.LessThanOrEqualTo(bound), "a read returned data older than the budget allows");
            Assert.That(leftAfter, Is.Not.Null, "the lagging replica never left the rotation");
            Assert.That(backAfter, Is.Not.Null.And.LessThan(TimeSpan.FromSeconds(2)), "reads did not return to the replica within a few intervals");
            Assert.That(onReplica, Is.GreaterThan(10));
            Assert.That(worst, Is.GreaterThan(TimeSpan.FromMilliseconds(300)), "replay was paused: some read must have been noticeably stale, or the test proves nothing");
        });
        Assert.That(cluster.Recorder.AllEvents.Where(e => e.EventId == 2000).Select(e => e.Message), Has.One.Contains("over the budget of 1 s"));
    }

    [Test]
    public async Task An_idle_primary_does_not_make_a_caught_up_replica_look_late()
    {
        await using var cluster = await Cluster();
        await _servers.WaitForReplayAsync(_servers.Standby);

        await Task.Delay(Budget * 2.5); // no writes at all, well past the budget

        var replica = cluster.Cluster.Replicas[0];
        Assert.That(replica.IsAdmitted, Is.True, replica.Health.Problem);
        Assert.That(replica.Health.Lag, Is.EqualTo(TimeSpan.Zero));
        Assert.That(replica.Health.LagBytes, Is.Zero);
        Assert.That(replica.Health.WalReceiverStreaming, Is.True);
        await using var context = cluster.NewContext();
        Assert.That((await context.WhereAmI().SingleAsync()).Port, Is.EqualTo(_servers.Standby.Port));
    }

    [Test]
    public async Task A_per_query_budget_sends_the_query_to_the_primary_when_the_replica_is_behind_it()
    {
        // The cluster's budget is 10 s here, not the fixture's 1 s: "inside the cluster budget" must hold however late the
        // reads run after the pause. With 1 s, a probe that measured the replica 0.6 s behind left it out of every selection
        // at once (lag + time since the probe + one 200 ms interval > 1 s). Under a CPU hog the relaxed read went to the
        // primary in 1 of 1 runs before this and still in 1 of 3 after it (see the warm-up below), so its reason is printed.
        await using var cluster = await Cluster(TimeSpan.FromSeconds(10));
        await Poll.Until(() => cluster.Cluster.Replicas[0].IsAdmitted, TimeSpan.FromSeconds(30));
        // Both queries once before the pause, so that EF's model and query compilation do not run while replay is paused:
        // under a CPU hog they took long enough, as the first queries of the process, for the replica to be measured
        // 10.4 s behind, over even this budget.
        await using (var warm = cluster.NewContext())
        {
            _ = await warm.WhereAmI().WithMaxStaleness(TimeSpan.FromMilliseconds(100)).SingleAsync();
            _ = await warm.WhereAmI().WithMaxStaleness(TimeSpan.FromSeconds(30)).SingleAsync();
        }

        await using var writer = new TickWriter(_servers.Primary, TimeSpan.FromMilliseconds(50));
        await _servers.Standby.PauseReplayAsync();
        try
        {
            await Task.Delay(TimeSpan.FromMilliseconds(600)); // at least 0.6 s behind: inside the cluster budget, outside a 100 ms one
            await using var context = cluster.NewContext();

            var strict = await context.WhereAmI().WithMaxStaleness(TimeSpan.FromMilliseconds(100)).SingleAsync();
            var strictReason = cluster.Recorder.Last;
            // Another scope: in the same one, monotonic reads keep a read after a primary read off a replica that is behind it.
            await using var other = cluster.NewContext();
            var relaxed = await other.WhereAmI().WithMaxStaleness(TimeSpan.FromSeconds(30)).SingleAsync();
            var relaxedReason = cluster.Recorder.Last;

            Assert.That(strict.Port, Is.EqualTo(_servers.Primary.Port));
            Assert.That((strictReason.Target, strictReason.Reason), Is.EqualTo(("primary", "replica-lagging")));
            Assert.That(relaxed.Port, Is.EqualTo(_servers.Standby.Port),
                $"the relaxed read went to {relaxedReason.Target} ({relaxedReason.Reason}); replica admitted: {cluster.Cluster.Replicas[0].IsAdmitted}, "
                + $"lag at its last probe: {cluster.Cluster.Replicas[0].Health.Lag?.TotalMilliseconds:0} ms");
        }
        finally
        {
            await _servers.Standby.ResumeReplayAsync();
        }
    }

    [Test]
    public async Task Health_check_is_degraded_while_the_replica_is_out_and_healthy_again_after()
    {
        await using var cluster = await Cluster();
        var check = new EfReplicaHealthCheck(cluster.Cluster);
        var context = new HealthCheckContext();

        var before = await check.CheckHealthAsync(context);
        HealthCheckResult during;
        await using (var writer = new TickWriter(_servers.Primary, TimeSpan.FromMilliseconds(50)))
        {
            await _servers.Standby.PauseReplayAsync();
            await Poll.Until(() => !cluster.Cluster.Replicas[0].IsAdmitted, TimeSpan.FromSeconds(5));
            during = await check.CheckHealthAsync(context);
            await _servers.Standby.ResumeReplayAsync();
        }

        await Poll.Until(() => cluster.Cluster.Replicas[0].IsAdmitted, TimeSpan.FromSeconds(5));
        var after = await check.CheckHealthAsync(context);

        Assert.That(before.Status, Is.EqualTo(HealthStatus.Healthy), before.Description);
        Assert.That(during.Status, Is.EqualTo(HealthStatus.Degraded), during.Description);
        Assert.That(during.Description, Does.Contain("standby1"));
        Assert.That(after.Status, Is.EqualTo(HealthStatus.Healthy), after.Description);
    }
}
