using System.Collections.Concurrent;
using System.Diagnostics;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Failover;

/// <summary>Real failures under load: a replica killed, a primary restarted, a primary failed over to its promoted standby.</summary>
[NonParallelizable]
public sealed class FailoverChaosTests
{
    private static async Task<PostgresReplicaSet> StartServers()
    {
        var servers = await PostgresReplicaSet.StartAsync(standbys: 1);
        if (servers.IsExternal)
        {
            await servers.DisposeAsync();
            Assert.Ignore("Stopping and promoting servers needs servers started by the tests.");
        }

        await servers.Primary.ExecuteAsync(ShopContext.Schema);
        await servers.WaitForReplayAsync(servers.Standby);
        return servers;
    }

    [Test]
    public async Task Replica_killed_under_eight_readers_fails_no_read_and_serves_again_after_restart()
    {
        await using var servers = await StartServers();
        await using var cluster = await TestCluster.CreateAsync(servers, options => options.HealthCheckInterval = TimeSpan.FromMilliseconds(200));
        var failures = new ConcurrentQueue<string>();
        int onPrimary = 0, onStandby = 0, reads = 0;
        using var stop = new CancellationTokenSource();
        var readers = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await using var context = cluster.NewContext();
                    var side = await context.WhereAmI().SingleAsync();
                    Interlocked.Increment(ref side.InRecovery ? ref onStandby : ref onPrimary);
                    Interlocked.Increment(ref reads);
                }
                catch (Exception exception)
                {
                    failures.Enqueue($"{exception.GetType().Name}: {exception.Message}");
                }
            }
        })).ToArray();

        // Every wait is for a condition with a bound, never for a fixed time: on a loaded machine (a CPU hog and other
        // test runs, containers) 8 readers made 16 reads in the 2 s the test used to wait, none of them on the primary.
        Assert.That(await WaitForAsync(() => Volatile.Read(ref onStandby) >= 16, TimeSpan.FromSeconds(60)), Is.True, "readers reached the standby before it was killed");
        await servers.Standby.StopAsync(StopMode.Immediate);
        var primaryAtStop = Volatile.Read(ref onPrimary);
        await WaitForAsync(() => Volatile.Read(ref onPrimary) - primaryAtStop > 50, TimeSpan.FromSeconds(60));
        var primaryWhileDown = Volatile.Read(ref onPrimary) - primaryAtStop;
        await servers.Standby.StartAsync();
        var standbyBefore = Volatile.Read(ref onStandby);
        var clock = Stopwatch.StartNew();
        await WaitForAsync(() => Volatile.Read(ref onStandby) > standbyBefore, TimeSpan.FromSeconds(30));
        var backAfter = clock.Elapsed;
        // A few more reads on the restarted standby: a failure right after its return would surface among them.
        var standbyBack = Volatile.Read(ref onStandby);
        await WaitForAsync(() => Volatile.Read(ref onStandby) >= standbyBack + 8, TimeSpan.FromSeconds(30));
        await stop.CancelAsync();
        await Task.WhenAll(readers);

        TestContext.Out.WriteLine($"{reads} reads by 8 readers: {failures.Count} failed, {onPrimary} on the primary ({primaryWhileDown} while the standby was down), {onStandby} on the standby; back on the standby {backAfter.TotalMilliseconds:0} ms after it started");
        Assert.Multiple(() =>
        {
            Assert.That(failures, Is.Empty, "a failed read surfaced to a reader");
            Assert.That(primaryWhileDown, Is.GreaterThan(50), "reads continued on the primary");
            Assert.That(Volatile.Read(ref onStandby), Is.GreaterThan(standbyBefore), "the restarted replica serves reads again");
        });
    }

    /// <summary>Polls <paramref name="condition"/> every 20 ms until it holds (true) or <paramref name="bound"/> passed (false).</summary>
    private static async Task<bool> WaitForAsync(Func<bool> condition, TimeSpan bound)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > bound)
            {
                return false;
            }

            await Task.Delay(20);
        }

        return true;
    }

    public enum WriteOutcome
    {
        Succeeded,
        NotApplied,
        Unknown,
        OtherError,
    }

    [Test]
    public async Task Primary_stopped_and_standby_promoted_under_four_writers_loses_and_duplicates_nothing()
    {
        await using var servers = await StartServers();
        var multiHost = new NpgsqlConnectionStringBuilder(servers.MultiHostPrimaryConnectionString) { HostRecheckSeconds = 1, Timeout = 3 }.ConnectionString;
        await using var cluster = await TestCluster.CreateAsync(servers, options =>
        {
            options.Primary = multiHost;
            options.HealthCheckInterval = TimeSpan.FromMilliseconds(200);
        });
        var outcomes = new ConcurrentDictionary<Guid, (WriteOutcome Outcome, TimeSpan At, string Detail)>();
        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 4).Select(writer => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var id = Guid.NewGuid();
                try
                {
                    await using var context = cluster.NewContext();
                    context.Orders.Add(new Order { Id = id, Writer = writer });
                    await context.SaveChangesAsync();
                    outcomes[id] = (WriteOutcome.Succeeded, clock.Elapsed, "");
                }
                catch (EfReplicaFailoverException failover)
                {
                    outcomes[id] = (failover.Outcome == FailoverOutcome.NotApplied ? WriteOutcome.NotApplied : WriteOutcome.Unknown, clock.Elapsed, failover.InnerException?.GetType().Name ?? "");
                    await Task.Delay(20);
                }
                catch (Exception exception)
                {
                    outcomes[id] = (WriteOutcome.OtherError, clock.Elapsed, $"{exception.GetType().Name}: {exception.Message}");
                    await Task.Delay(20);
                }
            }
        })).ToArray();

        await Task.Delay(1000);
        var stoppedAt = clock.Elapsed;
        await servers.Primary.StopAsync(StopMode.Fast);
        await servers.Standby.PromoteAsync();
        var promotedAt = clock.Elapsed;
        while (!outcomes.Values.Any(o => o.Outcome == WriteOutcome.Succeeded && o.At > promotedAt) && clock.Elapsed - promotedAt < TimeSpan.FromSeconds(20))
        {
            await Task.Delay(20);
        }

        var recoveredAt = outcomes.Values.Where(o => o.Outcome == WriteOutcome.Succeeded && o.At > promotedAt).Select(o => o.At).DefaultIfEmpty(TimeSpan.MaxValue).Min();
        await Task.Delay(1000);
        await stop.CancelAsync();
        await Task.WhenAll(writers);

        // The truth, from the new primary.
        var present = new HashSet<Guid>();
        await using (var connection = new NpgsqlConnection(servers.Standby.ConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT id, count(*) OVER (PARTITION BY id) FROM orders", connection);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                Assert.That(reader.GetInt64(1), Is.EqualTo(1), "a row is duplicated");
                present.Add(reader.GetGuid(0));
            }
        }

        var byOutcome = outcomes.GroupBy(o => o.Value.Outcome).ToDictionary(g => g.Key, g => g.Select(o => o.Key).ToList());
        List<Guid> Of(WriteOutcome outcome) => byOutcome.GetValueOrDefault(outcome) ?? [];
        var unknownPresent = Of(WriteOutcome.Unknown).Count(present.Contains);
        TestContext.Out.WriteLine(
            $"{outcomes.Count} writes: {Of(WriteOutcome.Succeeded).Count} succeeded, {Of(WriteOutcome.NotApplied).Count} not applied, " +
            $"{Of(WriteOutcome.Unknown).Count} unknown ({unknownPresent} of them present, {Of(WriteOutcome.Unknown).Count - unknownPresent} absent), {Of(WriteOutcome.OtherError).Count} other errors; " +
            $"writes succeeded again {(recoveredAt - promotedAt).TotalMilliseconds:0} ms after the promotion " +
            $"({(recoveredAt - stoppedAt).TotalMilliseconds:0} ms after the primary was stopped)");
        foreach (var other in outcomes.Values.Where(o => o.Outcome == WriteOutcome.OtherError).Take(5))
        {
            TestContext.Out.WriteLine($"  other error: {other.Detail}");
        }

        Assert.Multiple(() =>
        {
            Assert.That(Of(WriteOutcome.Succeeded).Where(id => !present.Contains(id)), Is.Empty, "a write reported as succeeded is missing");
            Assert.That(Of(WriteOutcome.NotApplied).Where(present.Contains), Is.Empty, "a write reported as not applied was applied");
            Assert.That(Of(WriteOutcome.OtherError), Is.Empty, "every failover outcome must be typed");
            Assert.That(recoveredAt - promotedAt, Is.LessThan(TimeSpan.FromSeconds(10)), "writes did not recover without a restart");
            Assert.That(Of(WriteOutcome.NotApplied).Count + Of(WriteOutcome.Unknown).Count, Is.Positive, "the failover must have hit some writes, or the test proves nothing");
        });
    }

    [Test]
    public async Task After_a_primary_restart_the_first_read_succeeds_and_a_write_gets_a_clear_outcome()
    {
        await using var servers = await StartServers();
        await using var cluster = await TestCluster.CreateAsync(servers, withReplicas: false);
        await Warm(cluster);

        await servers.Primary.RestartAsync(StopMode.Fast);
        var clock = Stopwatch.StartNew();
        ServerSide read;
        await using (var context = cluster.NewContext())
        {
            read = await context.WhereAmI().SingleAsync(); // routed to the primary (no replica) and run by the library
        }

        var readTook = clock.Elapsed;
        Assert.That(read.Port, Is.EqualTo(servers.Primary.Port), "the first read after the restart must succeed");
        // Whether the read meets a stale pooled session depends on the machine's speed: when the monitor's probe lands in
        // the restart's down window (event 2005, likely on a loaded machine), the failed open empties the primary's pool and
        // the read opens a new session; otherwise the read meets the session the restart ended and must retry it once.
        var events = cluster.Recorder.AllEvents.Select(e => e.EventId).ToList();
        TestContext.Out.WriteLine($"events before the first read's end: {string.Join(", ", events.Where(e => e != 1000))}");
        if (!events.Contains(2005))
        {
            Assert.That(events, Does.Contain(1005), "the stale pooled connection failed once and was retried");
        }

        await Warm(cluster);
        await servers.Primary.RestartAsync(StopMode.Fast);
        clock.Restart();
        var id = Guid.NewGuid();
        string outcome;
        try
        {
            await using var context = cluster.NewContext();
            context.Orders.Add(new Order { Id = id });
            await context.SaveChangesAsync();
            outcome = "succeeded";
        }
        catch (EfReplicaFailoverException failover)
        {
            outcome = failover.Outcome.ToString();
            Assert.That(failover.InnerException, Is.Not.Null);
            Assert.That(failover.Message, Does.Contain("cluster 'default'"));
        }

        var writeTook = clock.Elapsed;
        var present = await servers.Primary.ScalarAsync<long>($"SELECT count(*) FROM orders WHERE id = '{id}'");
        TestContext.Out.WriteLine($"first read after restart took {readTook.TotalMilliseconds:0} ms; first write: {outcome} in {writeTook.TotalMilliseconds:0} ms, row present: {present}");
        Assert.That(outcome, Is.AnyOf("succeeded", "NotApplied", "Unknown"));
        if (outcome == "succeeded")
        {
            Assert.That(present, Is.EqualTo(1));
        }
        else if (outcome == "NotApplied")
        {
            Assert.That(present, Is.Zero);
        }

        Assert.That(writeTook, Is.LessThan(TimeSpan.FromSeconds(30)), "nothing may hang beyond the configured timeouts");

        await using var after = cluster.NewContext();
        after.Orders.Add(new Order { Id = Guid.NewGuid() });
        Assert.That(await after.SaveChangesAsync(), Is.EqualTo(1), "the next write works: the stale pool was cleared");
    }

    [Test]
    public async Task An_idempotent_unit_of_work_that_meets_a_dead_session_is_retried_as_a_whole()
    {
        await using var servers = await StartServers();
        await using var cluster = await TestCluster.CreateAsync(servers);
        await Warm(cluster);
        // End the library's idle pooled sessions on the primary: the next write on one of them meets 57P01. Not the
        // monitor's own connection (its last query is the primary probe): when its next probe met its dead session first,
        // the pool's idle sessions were gone by the write (as in the restart test above), which opened a fresh session, and
        // the unit of work ran once (failed 1 of 1 runs with both cores busy, where a probe round comes before the write).
        var ended = await servers.Primary.ScalarAsync<long>(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' "
            + "AND state = 'idle' AND query NOT LIKE 'SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery()%'");
        Assert.That(ended, Is.Positive, "a pooled session of the library was ended");
        var id = Guid.NewGuid();
        var failures = new List<FailoverOutcome>();
        var runs = 0;

        await cluster.Cluster.ExecuteIdempotentAsync(async cancellationToken =>
        {
            runs++;
            await using var context = cluster.NewContext();
            try
            {
                // Idempotent by its client-generated key.
                await context.Database.ExecuteSqlAsync($"INSERT INTO orders (id, writer) VALUES ({id}, 1) ON CONFLICT (id) DO NOTHING", cancellationToken);
            }
            catch (EfReplicaFailoverException failover)
            {
                failures.Add(failover.Outcome);
                throw;
            }
        });

        TestContext.Out.WriteLine($"{ended} idle sessions ended; unit of work ran {runs} times; failover outcomes seen: {string.Join(", ", failures)}; "
            + $"events: {string.Join(", ", cluster.Recorder.AllEvents.Select(e => e.EventId).Where(e => e != 1000))}");
        Assert.That(failures, Has.Count.EqualTo(1), "the first run should have met the dead session");
        Assert.That(runs, Is.EqualTo(2));
        Assert.That(await servers.Primary.ScalarAsync<long>($"SELECT count(*) FROM orders WHERE id = '{id}'"), Is.EqualTo(1));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Errors_that_are_not_failover_are_neither_retried_nor_wrapped(bool async)
    {
        await using var servers = await StartServers();
        await using var cluster = await TestCluster.CreateAsync(servers);
        var id = Guid.NewGuid();
        await servers.Primary.ExecuteAsync($"INSERT INTO orders (id, writer) VALUES ('{id}', 0)");

        await using (var context = cluster.NewContext())
        {
            context.Orders.Add(new Order { Id = id });
            var duplicate = async
                ? Assert.CatchAsync<DbUpdateException>(() => context.SaveChangesAsync())
                : Assert.Catch<DbUpdateException>(() => context.SaveChanges());
            Assert.That(duplicate, Is.Not.InstanceOf<EfReplicaFailoverException>());
            Assert.That(duplicate!.InnerException, Is.InstanceOf<PostgresException>().With.Property(nameof(PostgresException.SqlState)).EqualTo("23505"));
        }

        await using (var context = cluster.NewContext())
        {
            var query = context.Database.SqlQueryRaw<int>("SELEC 1 AS \"Value\"");
            var syntax = async
                ? Assert.CatchAsync<PostgresException>(() => query.ToListAsync())
                : Assert.Catch<PostgresException>(() => query.ToList());
            Assert.That(syntax!.SqlState, Is.EqualTo("42601"));
        }

        var events = cluster.Recorder.AllEvents.Select(e => e.EventId).ToList();
        Assert.That(events, Has.None.EqualTo(1002).And.None.EqualTo(1005).And.None.EqualTo(1006), "nothing was retried or translated");
    }

    private static async Task Warm(TestCluster cluster)
    {
        for (var i = 0; i < 5; i++)
        {
            await using var context = cluster.NewContext();
            await context.WhereAmI().UsePrimary().SingleAsync();
            context.Orders.Add(new Order { Id = Guid.NewGuid() });
            await context.SaveChangesAsync();
        }
    }
}
