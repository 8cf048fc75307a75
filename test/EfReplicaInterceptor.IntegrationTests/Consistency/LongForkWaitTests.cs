using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Consistency;

/// <summary>
/// The Long Fork wait (<see cref="EfReplicaOptions.LongForkWait"/>) on real servers: a primary with a synchronous standby
/// (<c>remote_apply</c>, its replay paused so a commit waits for it) and an asynchronous standby, the cluster's only replica,
/// which already shows the waiting commit. A scope reads it there; the replica then stops, so the scope's next read goes to
/// the primary, whose snapshots do not show the commit yet. Without the wait that read returns older data than the scope
/// saw; with it, the read waits until the primary shows the commit (released here once the read is seen waiting).
/// <c>track_commit_timestamp = on</c>: the stopped standby cannot be asked, the primary's commit timestamps tell what to
/// wait for.
/// </summary>
[NonParallelizable]
public sealed class LongForkWaitTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private PostgresReplicaSet _servers = null!;

    private PostgresServer Synchronous => _servers.Standbys[0];

    private PostgresServer Asynchronous => _servers.Standbys[1];

    [OneTimeSetUp]
    public async Task StartServers() => _servers = await SynchronousReplicaSet.StartAsync("CREATE TABLE long_fork (id bigserial PRIMARY KEY)", Bound);

    [OneTimeTearDown]
    public async Task StopServers() => await _servers.DisposeAsync();

    [TestCase(true)]
    [TestCase(false)]
    public async Task A_scope_that_moves_from_a_standby_to_the_primary_does_not_read_older_data_there(bool longForkWait)
    {
        await using var cluster = await TestCluster.CreateAsync(
            _servers,
            options =>
            {
                options.Replicas.Remove(options.Replicas.Single(r => r.Name == Synchronous.Name));
                options.LongForkWait = longForkWait;
                options.Failover.ReadDeadline = Bound;
            });
        var before = await _servers.Primary.ScalarAsync<long>("SELECT count(*) FROM long_fork");
        await Synchronous.PauseReplayAsync();
        var commit = _servers.Primary.ExecuteAsync("INSERT INTO long_fork DEFAULT VALUES"); // waits for the synchronous standby
        try
        {
            await Poll.UntilAsync(async () => await Asynchronous.ScalarAsync<long>("SELECT count(*) FROM long_fork") == before + 1, Bound, "the asynchronous standby to show the commit");
            Assert.That(commit.IsCompleted, Is.False, "the commit did not wait for the synchronous standby");

            await using var context = cluster.NewContext();
            var seen = await CountAsync(context);
            Assert.That(seen, Is.EqualTo((before + 1, true)), "the scope's first read ran on the asynchronous standby and saw the commit");

            // The scope's replica stops: its next read goes to the primary (once the cluster knows the replica is gone).
            await Asynchronous.StopAsync(StopMode.Immediate);
            await Poll.UntilAsync(async () => !(await CountAsync(cluster.NewContext())).OnStandby, Bound, "reads without a past to go to the primary");

            var since = await _servers.Primary.ScalarAsync<string>("SELECT now()::text");
            var read = CountAsync(context);
            await Poll.UntilAsync(async () => read.IsCompleted || await LongForkPollSeenAsync(since), Bound, "the read to finish or to wait for the primary");
            var waited = !read.IsCompleted;
            await Synchronous.ResumeReplayAsync(); // the commit completes: the primary shows it
            var then = await read.WaitAsync(Bound);
            TestContext.Out.WriteLine($"LongForkWait={longForkWait}: the scope saw {seen.Count} on the standby, then {then.Count} on the primary; the read was seen waiting: {waited}");

            Assert.That(then.OnStandby, Is.False, "the second read ran on the primary");
            if (longForkWait)
            {
                Assert.That(then.Count, Is.EqualTo(before + 1), "the read on the primary returned older data than the scope had seen");
                Assert.That(waited, Is.True);
            }
            else
            {
                Assert.That(then.Count, Is.EqualTo(before), "without the wait, the primary showed the older data (the window this guards against)");
            }
        }
        finally
        {
            await Synchronous.ResumeReplayAsync();
            await commit.WaitAsync(Bound);
            await Asynchronous.StartAsync();
            await _servers.WaitForReplayAsync(Asynchronous);
        }
    }

    private static async Task<(long Count, bool OnStandby)> CountAsync(ShopContext context)
    {
        var row = await context.Database
            .SqlQueryRaw<CountRow>("SELECT (SELECT count(*) FROM long_fork) AS \"Count\", pg_is_in_recovery() AS \"OnStandby\"")
            .SingleAsync();
        return (row.Count, row.OnStandby);
    }

    /// <summary>The library's Long Fork poll is running on the primary (the read is waiting).</summary>
    private async Task<bool> LongForkPollSeenAsync(string since)
        => await _servers.Primary.ScalarAsync<bool>(
            $"SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_visible_in_snapshot%' AND pid <> pg_backend_pid() AND query_start >= '{since}'::timestamptz)");

    private sealed record CountRow(long Count, bool OnStandby);
}
