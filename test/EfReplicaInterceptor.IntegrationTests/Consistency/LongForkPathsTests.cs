using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Consistency;

/// <summary>
/// The Long Fork wait (<see cref="EfReplicaOptions.LongForkWait"/>) on every other way a scope that read on a standby reaches
/// the primary, on real servers: a primary with a synchronous standby (<c>remote_apply</c>, its replay paused so a commit
/// waits for it, which makes the window long) and an asynchronous standby, the cluster's only replica, which already shows
/// the waiting commit. A scope reads it there; then a command of the scope runs on the primary without the resolver sending
/// it there: a <c>UsePrimary()</c> read, a read inside a transaction, an <c>UPDATE ... WHERE</c> of the row it saw, or a
/// read that fails over from its replica (stopped under it) inside the read executor. Without the wait the command sees the
/// older data (or updates nothing); with it, it waits until the primary shows the commit (released here once it is seen
/// waiting). Run with <c>track_commit_timestamp</c> on and off: off, the stopped standby of the failover cannot be asked,
/// and the unfiltered wait (every transaction the primary's snapshot does not show) holds the read.
/// </summary>
[TestFixture(true)]
[TestFixture(false)]
[NonParallelizable]
public sealed class LongForkPathsTests(bool commitTimestamps)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private PostgresReplicaSet _servers = null!;

    /// <summary>How the scope's command reaches the primary.</summary>
    public enum Move
    {
        /// <summary>A read tagged <c>UsePrimary()</c>.</summary>
        UsePrimary,

        /// <summary>A read, the first command of a transaction.</summary>
        Transaction,

        /// <summary>An <c>UPDATE ... WHERE id = </c> the row the scope saw on the standby.</summary>
        Update,
    }

    private PostgresServer Synchronous => _servers.Standbys[0];

    private PostgresServer Asynchronous => _servers.Standbys[1];

    [OneTimeSetUp]
    public async Task StartServers() => _servers = await SynchronousReplicaSet.StartAsync("CREATE TABLE long_fork (id bigserial PRIMARY KEY)", Bound, commitTimestamps);

    [OneTimeTearDown]
    public async Task StopServers() => await _servers.DisposeAsync();

    [TestCase(Move.UsePrimary, true)]
    [TestCase(Move.UsePrimary, false)]
    [TestCase(Move.Transaction, true)]
    [TestCase(Move.Transaction, false)]
    [TestCase(Move.Update, true)]
    [TestCase(Move.Update, false)]
    public async Task A_command_sent_to_the_primary_after_a_standby_read_sees_what_the_standby_showed(Move move, bool longForkWait)
    {
        await using var cluster = await CreateClusterAsync(longForkWait);
        await using var pending = await CommitWaitingForTheSynchronousStandbyAsync();
        await using var context = cluster.NewContext();
        var seen = await CountAsync(context);
        Assert.That((seen.Count, seen.OnStandby), Is.EqualTo((pending.Before + 1, true)), "the scope's first read ran on the asynchronous standby and saw the commit");

        var since = await _servers.Primary.ScalarAsync<string>("SELECT now()::text");
        var command = move switch
        {
            Move.UsePrimary => CountAsync(context, usePrimary: true),
            Move.Transaction => InTransactionAsync(context),
            _ => UpdateAsync(context, seen.Max),
        };
        var waited = await SeenWaitingAsync(command, since);
        await Synchronous.ResumeReplayAsync(); // the commit completes: the primary shows it
        var then = await command.WaitAsync(Bound);
        TestContext.Out.WriteLine($"{move}, LongForkWait={longForkWait}, commit timestamps {commitTimestamps}: saw {seen.Count} on the standby, then {then.Count} on the primary; seen waiting: {waited}");

        Assert.That(then.OnStandby, Is.False, "the command ran on the primary");
        if (longForkWait)
        {
            Assert.That(then.Count, Is.EqualTo(move == Move.Update ? 1 : pending.Before + 1), "the command on the primary did not see what the scope had seen on the standby");
            Assert.That(waited, Is.True);
        }
        else
        {
            Assert.That(then.Count, Is.EqualTo(move == Move.Update ? 0 : pending.Before), "without the wait, the primary showed the older data (the window this guards against)");
        }
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task A_read_that_fails_over_from_its_standby_to_the_primary_sees_what_the_standby_showed(bool longForkWait)
    {
        await using var cluster = await CreateClusterAsync(longForkWait);
        await using var pending = await CommitWaitingForTheSynchronousStandbyAsync();
        try
        {
            await using var context = cluster.NewContext();
            var seen = await CountAsync(context);
            Assert.That((seen.Count, seen.OnStandby), Is.EqualTo((pending.Before + 1, true)), "the scope's first read ran on the asynchronous standby and saw the commit");

            // The scope's replica stops under it; the cluster does not know yet (no probe for a long interval), so the read
            // goes there, fails, and the read executor runs it on the primary.
            await Asynchronous.StopAsync(StopMode.Immediate);
            cluster.Recorder.Clear();
            var since = await _servers.Primary.ScalarAsync<string>("SELECT now()::text");
            var read = CountAsync(context);
            var waited = await SeenWaitingAsync(read, since);
            await Synchronous.ResumeReplayAsync();
            var then = await read.WaitAsync(Bound);
            var events = cluster.Recorder.AllEvents.Select(e => e.EventId).ToList();
            TestContext.Out.WriteLine($"LongForkWait={longForkWait}, commit timestamps {commitTimestamps}: saw {seen.Count} on the standby, then {then.Count} on the primary; seen waiting: {waited}; events {string.Join(", ", events.Distinct())}");

            Assert.That(events, Does.Contain(EfReplicaEventId.ReplicaFailedForCommand), "the read failed on its replica and failed over inside the read executor");
            Assert.That(then.OnStandby, Is.False);
            if (longForkWait)
            {
                Assert.That(then.Count, Is.EqualTo(pending.Before + 1), "the read that failed over to the primary returned older data than the scope had seen");
                Assert.That(waited, Is.True);
                Assert.That(events.Contains(EfReplicaEventId.LongForkUnfiltered), Is.EqualTo(!commitTimestamps), "the failed standby is not asked: without commit timestamps, the unfiltered wait");
            }
            else
            {
                Assert.That(then.Count, Is.EqualTo(pending.Before), "without the wait, the primary showed the older data");
            }
        }
        finally
        {
            await Synchronous.ResumeReplayAsync();
            await Asynchronous.StartAsync();
            await _servers.WaitForReplayAsync(Asynchronous);
        }
    }

    private async Task<TestCluster> CreateClusterAsync(bool longForkWait)
        => await TestCluster.CreateAsync(
            _servers,
            options =>
            {
                options.Replicas.Remove(options.Replicas.Single(r => r.Name == Synchronous.Name));
                options.LongForkWait = longForkWait;
                options.HealthCheckInterval = TimeSpan.FromSeconds(20); // the stopped replica is found by the failed read, not a probe
                options.Failover.ReadDeadline = Bound;
            });

    /// <summary>
    /// Pauses the synchronous standby's replay and commits a row on the primary: the commit waits for that standby, while the
    /// asynchronous one already shows it. Disposing resumes the replay and waits for the commit.
    /// </summary>
    private async Task<PendingCommit> CommitWaitingForTheSynchronousStandbyAsync()
    {
        var before = await _servers.Primary.ScalarAsync<long>("SELECT count(*) FROM long_fork");
        await Synchronous.PauseReplayAsync();
        var commit = _servers.Primary.ExecuteAsync("INSERT INTO long_fork DEFAULT VALUES");
        var pending = new PendingCommit(before, commit, Synchronous);
        await Poll.UntilAsync(async () => await Asynchronous.ScalarAsync<long>("SELECT count(*) FROM long_fork") == before + 1, Bound, "the asynchronous standby to show the commit");
        Assert.That(commit.IsCompleted, Is.False, "the commit did not wait for the synchronous standby");
        return pending;
    }

    /// <summary>Whether <paramref name="command"/> was seen waiting for the primary (the library's Long Fork poll) before it finished.</summary>
    private async Task<bool> SeenWaitingAsync(Task command, string since)
    {
        await Poll.UntilAsync(async () => command.IsCompleted || await LongForkPollSeenAsync(since), Bound, "the command to finish or to wait for the primary");
        return !command.IsCompleted;
    }

    private static async Task<(long Count, long Max, bool OnStandby)> CountAsync(ShopContext context, bool usePrimary = false)
    {
        var query = context.Database.SqlQueryRaw<CountRow>(
            "SELECT (SELECT count(*) FROM long_fork) AS \"Count\", (SELECT coalesce(max(id), 0) FROM long_fork) AS \"Max\", pg_is_in_recovery() AS \"OnStandby\"");
        var row = await (usePrimary ? query.UsePrimary() : query).SingleAsync();
        return (row.Count, row.Max, row.OnStandby);
    }

    private static async Task<(long Count, long Max, bool OnStandby)> InTransactionAsync(ShopContext context)
    {
        await using var transaction = await context.Database.BeginTransactionAsync();
        var row = await CountAsync(context);
        await transaction.CommitAsync();
        return row;
    }

    /// <summary>Updates the row the scope saw: the count is the rows updated (an UPDATE runs on the primary, never on a standby).</summary>
    private static async Task<(long Count, long Max, bool OnStandby)> UpdateAsync(ShopContext context, long id)
        => (await context.Database.ExecuteSqlAsync($"UPDATE long_fork SET id = id WHERE id = {id}"), id, false);

    /// <summary>The library's Long Fork poll is running on the primary (the command is waiting).</summary>
    private async Task<bool> LongForkPollSeenAsync(string since)
        => await _servers.Primary.ScalarAsync<bool>(
            $"SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_visible_in_snapshot%' AND pid <> pg_backend_pid() AND query_start >= '{since}'::timestamptz)");

    private sealed record CountRow(long Count, long Max, bool OnStandby);

    /// <summary>A commit waiting for the synchronous standby; disposing lets it complete.</summary>
    private sealed class PendingCommit(long before, Task commit, PostgresServer synchronous) : IAsyncDisposable
    {
        public long Before { get; } = before;

        public async ValueTask DisposeAsync()
        {
            await synchronous.ResumeReplayAsync();
            await commit.WaitAsync(Bound);
        }
    }
}
