using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Routing;

/// <summary>
/// Issue 20: a read after a write (read-your-writes) that finds no standby caught up goes to the primary; when the primary is
/// gone by then (a failover under way), the read waits for the topology, bounded by the read deadline. Judged by the servers:
/// a standby that replays the write meanwhile takes the read (the write's position was known), and a read whose write's
/// position was never learned is refused with a typed read failure rather than served by a standby that lacks the write.
/// </summary>
[NonParallelizable]
public sealed class ReadBackWithPrimaryGoneTests
{
    private const int ReadFailedOver = 1007;
    private const int PrimaryReadFailed = 1005;

    private static async Task<PostgresReplicaSet> StartServersAsync()
    {
        var servers = await ShopServers.StartAsync(standbys: 1);
        if (servers.IsExternal || servers.Backend != PostgresBackend.Local)
        {
            await servers.DisposeAsync();
            Assert.Ignore("Needs local servers started by the tests (replay paused, the primary stopped).");
        }

        return servers;
    }

    private static void Configure(EfReplicaOptions options, TimeSpan readDeadline)
    {
        options.HealthCheckInterval = TimeSpan.FromMilliseconds(200);
        options.Failover.ReadDeadline = readDeadline;
    }

    [Test]
    public async Task A_read_back_whose_write_position_is_known_runs_on_the_standby_once_it_has_replayed_the_write()
    {
        await using var servers = await StartServersAsync();

        // A generous deadline: the read must end when the standby has replayed, long before it.
        await using var cluster = await TestCluster.CreateAsync(servers, options => Configure(options, TimeSpan.FromSeconds(30)));
        await servers.Standby.PauseReplayAsync();
        var name = $"rb-{Guid.NewGuid():N}";
        await using var context = cluster.NewContext();
        context.People.Add(new Person { Name = name, Mood = Mood.Happy });
        await context.SaveChangesAsync();

        // The first read-back learns the write's position and, no standby having replayed it, runs on the primary.
        var first = await ReadBackAsync(context, name);
        Assert.That(first, Is.EqualTo((servers.Primary.Port, true)), "precondition: the first read-back ran on the primary");

        // What that read saw is bounded by the primary's position sampled after it: wait for a monitor round that started
        // after it (two rounds from now). Without a bound, only the primary could take the scope's next read.
        var rounds = cluster.Cluster.Monitor.Rounds;
        await Poll.Until(() => cluster.Cluster.Monitor.Rounds >= rounds + 2, TimeSpan.FromSeconds(20));

        await servers.Primary.StopAsync(StopMode.Immediate);
        var eventsBefore = cluster.Recorder.AllEvents.Count;
        var read = ReadBackAsync(context, name);

        // The read failed on the gone primary and waits; only now does the standby replay the write.
        await Poll.Until(
            () => cluster.Recorder.AllEvents.Skip(eventsBefore).Any(e => e.EventId == PrimaryReadFailed) || read.IsCompleted,
            TimeSpan.FromSeconds(20));
        Assert.That(read.IsCompleted, Is.False, "the read must wait for the topology, not end before the standby replayed");
        await servers.Standby.ResumeReplayAsync();

        Assert.That(await read, Is.EqualTo((servers.Standby.Port, true)), "the read-back ran on the standby and saw the write");
        Assert.That(cluster.Recorder.AllEvents.Select(e => e.EventId), Has.None.EqualTo(ReadFailedOver));
    }

    [Test]
    public async Task A_read_back_whose_write_position_was_never_learned_fails_typed_and_never_reads_a_standby_without_the_write()
    {
        await using var servers = await StartServersAsync();
        await using var cluster = await TestCluster.CreateAsync(servers, options => Configure(options, TimeSpan.FromSeconds(3)));
        await servers.Standby.PauseReplayAsync();
        var name = $"rb-{Guid.NewGuid():N}";
        await using var context = cluster.NewContext();
        context.People.Add(new Person { Name = name, Mood = Mood.Happy });
        await context.SaveChangesAsync();

        // The primary goes before the read-back could learn the write's position: no standby can be shown to have the write.
        await servers.Primary.StopAsync(StopMode.Immediate);
        var error = Assert.ThrowsAsync<EfReplicaFailoverException>(async () => await ReadBackAsync(context, name));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Outcome, Is.EqualTo(FailoverOutcome.NotApplied), "a read is never applied");
            Assert.That(error.Message, Does.Contain("the read could not run").And.Contain("Failover:ReadDeadline"));
            Assert.That(error.InnerException, Is.Not.Null, "the last server error is inside");
            Assert.That(cluster.Recorder.AllEvents.Select(e => e.EventId), Has.Some.EqualTo(ReadFailedOver), "a read event, not a write one");
        });
    }

    [Test]
    public async Task A_read_back_waits_for_the_primary_past_the_read_deadline_up_to_PrimaryWait_and_runs_there_when_it_answers()
    {
        await using var servers = await StartServersAsync();
        var readDeadline = TimeSpan.FromSeconds(3);
        await using var cluster = await TestCluster.CreateAsync(servers, options =>
        {
            Configure(options, readDeadline);
            options.Failover.PrimaryWait = TimeSpan.FromSeconds(60); // a failover under an HA manager takes its ttl
        });
        await servers.Standby.PauseReplayAsync();
        var name = $"rb-{Guid.NewGuid():N}";
        await using var context = cluster.NewContext();
        context.People.Add(new Person { Name = name, Mood = Mood.Happy });
        await context.SaveChangesAsync();

        // As in the test above, no standby can be shown to have the write; but the wait for a primary now outlasts the read
        // deadline: the read is still waiting once the deadline has passed, and runs on the primary when it is back.
        await servers.Primary.StopAsync(StopMode.Immediate);
        var started = System.Diagnostics.Stopwatch.StartNew();
        var read = ReadBackAsync(context, name);
        await Poll.Until(() => read.IsCompleted || started.Elapsed > readDeadline + TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
        Assert.That(read.IsCompleted, Is.False, $"the read must still wait once the read deadline has passed (it ended: {(read.IsCompleted ? read.Exception?.InnerException?.Message : null)})");

        await servers.Primary.StartAsync();
        Assert.That(await read, Is.EqualTo((servers.Primary.Port, true)), "the read-back ran on the primary once it answered, and saw the write");
        Assert.That(cluster.Recorder.AllEvents.Select(e => e.EventId), Has.None.EqualTo(ReadFailedOver));
    }

    /// <summary>The written row read back in the context's own unit of work, with where it ran; the port and whether the row was there.</summary>
    private static async Task<(int Port, bool Found)> ReadBackAsync(ShopContext context, string name)
    {
        var rows = await context.People.Where(p => p.Name == name).Select(p => new { Port = ShopDbContext.ServerPort() }).ToListAsync();
        if (rows.Count == 0)
        {
            var side = await context.WhereAmI().SingleAsync();
            return (side.Port, false);
        }

        return (rows[0].Port, true);
    }
}
