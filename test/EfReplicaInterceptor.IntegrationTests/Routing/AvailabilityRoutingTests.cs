using System.Net;
using System.Net.Sockets;
using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.TestSupport;

namespace EfReplicaInterceptor.IntegrationTests.Routing;

/// <summary>Without a usable replica, reads go to the primary with no error for the caller.</summary>
public sealed class AvailabilityRoutingTests : RoutingTestBase
{
    [TestCase(false)]
    [TestCase(true)]
    public async Task Without_replicas_every_command_goes_to_the_primary(bool async)
    {
        await using var cluster = await TestCluster.CreateAsync(Servers, withReplicas: false);
        await using var context = cluster.NewContext();

        AssertOnPrimary(await WhereAmI(context, async));
        Assert.That(cluster.Recorder.Last, Is.EqualTo(new RoutedCommand(1000, "LinqQuery", "primary", "no-replica")));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Unreachable_replica_is_skipped_without_an_error(bool async)
    {
        var deadPort = UnusedPort();
        await using var cluster = await TestCluster.CreateAsync(Servers, options =>
        {
            options.Replicas.Clear();
            options.Replicas.Add(new ReplicaEndpointOptions { Name = "dead", ConnectionString = $"Host=127.0.0.1;Port={deadPort};Database=efreplica;Username=nobody;Password=secret-never-logged;Timeout=2" });
            options.HealthCheckInterval = TimeSpan.FromMinutes(5);
        });
        await using var context = cluster.NewContext();

        AssertOnPrimary(await WhereAmI(context, async));
        AssertOnPrimary(await WhereAmI(context, async));

        var events = cluster.Recorder.AllEvents;
        Assert.Multiple(() =>
        {
            Assert.That(cluster.Recorder.Commands.Select(c => (c.Target, c.Reason)), Is.All.EqualTo(("primary", "replica-unavailable")));
            Assert.That(events.Count(e => e.EventId == 1002), Is.Zero, "the monitor kept the dead replica out: no read paid for it");
            Assert.That(events.Count(e => e.EventId == 2003), Is.EqualTo(1), "a replica kept out is logged once");
            Assert.That(events.Single(e => e.EventId == 2003).Level, Is.EqualTo(Microsoft.Extensions.Logging.LogLevel.Warning));
            Assert.That(events.Select(e => e.Message), Has.None.Contains("secret-never-logged"));
        });
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task A_replica_that_failed_a_read_is_paused_until_a_probe_finds_it_healthy(bool async)
    {
        await using var cluster = await TestCluster.CreateAsync(Servers, options => options.HealthCheckInterval = TimeSpan.FromMinutes(5));
        await using var context = cluster.NewContext();
        var replica = cluster.Cluster.Replicas[0];
        // The background loop's first round runs beside the one CreateAsync waited for; let both finish.
        await Poll.Until(() => cluster.Cluster.Monitor.Rounds >= 2, TimeSpan.FromSeconds(10));

        replica.ReportFailure(); // as if a read had just failed on it
        AssertOnPrimary(await WhereAmI(context, async));
        AssertLastDecisionOf(cluster, "primary", "replica-unavailable");
        Assert.That(replica.ProbeRequested, Is.True, "the monitor is told");

        await cluster.Cluster.RefreshHealthAsync();

        // A new scope: the first one read on the primary, and monotonic reads would keep it there until the replica has
        // replayed the primary's position taken after that read (usually at once, but WAL not yet flushed delays it).
        await using var next = cluster.NewContext();
        AssertOnReplica(await WhereAmI(next, async));
        Assert.That(replica.IsAdmitted, Is.True);
        Assert.That(cluster.Recorder.AllEvents.Count(e => e.EventId == 2001), Is.EqualTo(1), "rejoining is logged once");
    }

    private static void AssertLastDecisionOf(TestCluster cluster, string target, string reason)
        => Assert.That((cluster.Recorder.Last.Target, cluster.Recorder.Last.Reason), Is.EqualTo((target, reason)));

    private static int UnusedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
