using System.Diagnostics;
using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Topology;

/// <summary>
/// Issue 20, fast re-admission with a real standby: stopped long enough that the old probe backoff had reached 8
/// intervals, then started again, it is back in rotation within two of the monitor's probe rounds of answering (counted in
/// <c>ClusterMonitor.Rounds</c>, not in wall-clock time), and reads reach it again.
/// </summary>
[NonParallelizable]
public sealed class ReplicaReadmissionTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);

    [Test]
    public async Task A_restarted_standby_is_back_in_rotation_within_two_probe_rounds_of_answering()
    {
        await using var servers = await ShopServers.StartAsync(standbys: 1);
        if (servers.IsExternal)
        {
            Assert.Ignore("Stopping a standby needs servers started by the tests.");
        }

        await using var cluster = await TestCluster.CreateAsync(servers, options => options.HealthCheckInterval = Interval);
        var standby = cluster.Cluster.Replicas[0];
        var monitor = cluster.Cluster.Monitor;
        await Poll.Until(() => standby.IsAdmitted, TimeSpan.FromSeconds(10));

        await servers.Standby.StopAsync(StopMode.Fast);
        await Poll.Until(() => !standby.IsAdmitted, TimeSpan.FromSeconds(10));
        var leftAt = monitor.Rounds;
        await Poll.Until(() => monitor.Rounds >= leftAt + 12, TimeSpan.FromSeconds(30)); // past 1 + 2 + 4 + 8 intervals of the old backoff

        await servers.Standby.StartAsync(); // returns once it accepts connections: it answers from here
        var answeredAt = monitor.Rounds;
        var clock = Stopwatch.StartNew();
        await Poll.Until(() => standby.IsAdmitted, TimeSpan.FromSeconds(30));
        var admittedAt = monitor.Rounds;
        var took = clock.Elapsed;
        ServerSide side;
        await using (var context = cluster.NewContext())
        {
            side = await context.WhereAmI().SingleAsync();
        }

        TestContext.Out.WriteLine($"back in rotation {admittedAt - answeredAt} probe round(s) ({took.TotalMilliseconds:0} ms at {Interval.TotalMilliseconds:0} ms a round) after it answered; flapping: {standby.Availability.IsFlapping}");
        Assert.Multiple(() =>
        {
            Assert.That(admittedAt - answeredAt, Is.LessThanOrEqualTo(2), "back within two probe rounds of answering");
            Assert.That(side, Is.EqualTo(new ServerSide(servers.Standby.Port, InRecovery: true)), "reads reach it again");
            Assert.That(cluster.Recorder.AllEvents.Count(e => e.EventId == 2001), Is.EqualTo(1), "one return announced");
        });
    }

    /// <summary>
    /// Issue 21 (the standby that restarts): a standby restarted again soon after its return (within its probation, so the
    /// outage counts as flapping) and kept down long enough for the old probe backoff to reach 8 intervals is back within
    /// three probe rounds of answering (two calm probes), not after the backoff. The history matrix's restart cells restart
    /// a standby every few seconds; with the backoff a scope's reads went to the primary for seconds after each restart.
    /// </summary>
    [Test]
    public async Task A_standby_restarted_again_within_its_probation_is_back_within_three_probe_rounds_of_answering()
    {
        await using var servers = await ShopServers.StartAsync(standbys: 1);
        if (servers.IsExternal)
        {
            Assert.Ignore("Stopping a standby needs servers started by the tests.");
        }

        await using var cluster = await TestCluster.CreateAsync(servers, options => options.HealthCheckInterval = Interval);
        var standby = cluster.Cluster.Replicas[0];
        var monitor = cluster.Cluster.Monitor;
        await Poll.Until(() => standby.IsAdmitted, TimeSpan.FromSeconds(10));

        // The first outage: a fast one, back on one calm probe; the clock of its probation starts at that return.
        await servers.Standby.StopAsync(StopMode.Fast);
        await Poll.Until(() => !standby.IsAdmitted, TimeSpan.FromSeconds(10));
        await servers.Standby.StartAsync();
        await Poll.Until(() => standby.IsAdmitted, TimeSpan.FromSeconds(30));

        // The second, at once: within probation (8 rounds), so a flapping one.
        await servers.Standby.StopAsync(StopMode.Fast);
        await Poll.Until(() => !standby.IsAdmitted, TimeSpan.FromSeconds(10));
        Assert.That(standby.Availability.IsFlapping, Is.True, "down again within probation of its return");
        var leftAt = monitor.Rounds;
        await Poll.Until(() => monitor.Rounds >= leftAt + 16, TimeSpan.FromSeconds(30)); // past 1 + 2 + 4 + 8 intervals of the old backoff

        await servers.Standby.StartAsync(); // it answers from here
        var answeredAt = monitor.Rounds;
        await Poll.Until(() => standby.IsAdmitted, TimeSpan.FromSeconds(30));
        var admittedAt = monitor.Rounds;
        ServerSide side;
        await using (var context = cluster.NewContext())
        {
            side = await context.WhereAmI().SingleAsync();
        }

        TestContext.Out.WriteLine($"flapping standby back in rotation {admittedAt - answeredAt} probe round(s) after it answered");
        Assert.Multiple(() =>
        {
            Assert.That(admittedAt - answeredAt, Is.LessThanOrEqualTo(3), "back within three probe rounds of answering (two calm probes)");
            Assert.That(side, Is.EqualTo(new ServerSide(servers.Standby.Port, InRecovery: true)), "reads reach it again");
        });
    }
}
