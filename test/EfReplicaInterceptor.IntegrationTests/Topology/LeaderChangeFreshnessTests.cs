using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Topology;

/// <summary>
/// Freshness across a leader change, judged by the data: a primary P and standbys S1 and S2 (and S3), S2 behind, P crashed,
/// S1 promoted, the other standbys re-pointed to S1, S2 then let go. Writers insert rows all along (each acknowledged write
/// noted with when it was acknowledged), readers read the newest id through the library; no read may miss a write that was
/// acknowledged more than the lag budget before the read started and that is on the final primary; S2 must come back once it
/// has caught up.
/// </summary>
[NonParallelizable]
public sealed partial class LeaderChangeFreshnessTests
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// The lag is known to within one sampling of the primary, and a read's start and a write's acknowledgement are taken
    /// on the client, apart from the server's snapshot: one interval and a stated slack on top of the budget.
    /// </summary>
    private static readonly TimeSpan Bound = Budget + Interval + TimeSpan.FromMilliseconds(250);

    /// <summary>How S2 is kept behind and re-pointed at the new primary.</summary>
    public enum Lagging
    {
        /// <summary>
        /// S2's replay paused half a budget before the crash (in rotation then); re-pointed with <c>ALTER SYSTEM</c> and a
        /// reload, replay still paused for a while, then resumed.
        /// </summary>
        PausedAndReloaded,

        /// <summary>
        /// S2 behind by <c>recovery_min_apply_delay</c> (more than the budget), re-pointed by a restart, as HA managers do,
        /// beside a third standby S3 that is caught up and re-pointed with a reload; the delay is removed a while later. While
        /// S2 restarts it does not answer, and the positions it lacks must not be forgotten meanwhile. Before the history kept
        /// them, S2 came back measured 0.35-0.5 s behind while 5 s behind: 108-174 reads older than the budget, worst 5.0 s,
        /// in 3 of 3 runs (the Patroni failure of issue 20: "the lag clock restarts").
        /// </summary>
        DelayedAndRestarted,
    }

    [TestCase(Lagging.PausedAndReloaded)]
    [TestCase(Lagging.DelayedAndRestarted)]
    public async Task A_standby_behind_the_others_at_a_crash_serves_no_read_older_than_the_budget_after_the_failover(Lagging lagging)
    {
        var restart = lagging == Lagging.DelayedAndRestarted;
        await using var servers = await ShopServers.StartAsync(standbys: restart ? 3 : 2);
        if (servers.IsExternal || servers.Backend != PostgresBackend.Local)
        {
            Assert.Ignore("Crashing, promoting and re-pointing servers (by port, over the shared socket directory) needs local servers started by the tests.");
        }

        var (primary, s1, s2) = (servers.Primary, servers.Standbys[0], servers.Standbys[1]);
        var multiHost = new NpgsqlConnectionStringBuilder(TestCluster.WithPool(primary.ConnectionString, TestCluster.DefaultMaxPoolSize))
        {
            Host = $"{primary.Host}:{primary.Port},{s1.Host}:{s1.Port}",
            TargetSessionAttributes = "primary",
            HostRecheckSeconds = 1,
            Timeout = 3,
        }.ConnectionString;
        await using var cluster = await TestCluster.CreateAsync(servers, options =>
        {
            options.Primary = multiHost;
            options.MaxReplicaLag = Budget;
            options.HealthCheckInterval = Interval;
        });

        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource();
        var writes = new ConcurrentBag<(long Id, TimeSpan AckedAt)>();
        var reads = new ConcurrentBag<(TimeSpan StartedAt, long Id, int Port)>();
        var failedReads = 0;
        await using var writeSource = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(multiHost) { MaxPoolSize = 4 }.ConnectionString);

        async Task WriteLoop()
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await using var connection = await writeSource.OpenConnectionAsync(stop.Token);
                    await using var insert = new NpgsqlCommand("INSERT INTO ticks DEFAULT VALUES RETURNING id", connection);
                    while (!stop.IsCancellationRequested)
                    {
                        var id = (long)(await insert.ExecuteScalarAsync(stop.Token))!;
                        writes.Add((id, clock.Elapsed));
                        await Task.Delay(5, stop.Token);
                    }
                }
                catch (Exception) when (!stop.IsCancellationRequested)
                {
                    await Task.Delay(20, CancellationToken.None); // the primary is gone: the next connection finds the new one
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                catch (NpgsqlException)
                {
                    return; // stopping
                }
            }
        }

        async Task ReadLoop()
        {
            while (!stop.IsCancellationRequested)
            {
                var startedAt = clock.Elapsed;
                try
                {
                    await using var context = cluster.NewContext();
                    var row = await context.Ticks.OrderByDescending(t => t.Id).Select(t => new { t.Id, Port = ShopContext.ServerPort() }).FirstAsync();
                    reads.Add((startedAt, row.Id, row.Port));
                }
                catch (Exception exception) when (exception is NpgsqlException or InvalidOperationException or EfReplicaFailoverException)
                {
                    Interlocked.Increment(ref failedReads);
                }

                await Task.Delay(5, CancellationToken.None);
            }
        }

        var loops = new[] { WriteLoop(), WriteLoop(), ReadLoop(), ReadLoop(), ReadLoop() };

        await Task.Delay(TimeSpan.FromSeconds(1));
        if (restart)
        {
            await s2.SetRecoveryMinApplyDelayAsync(Budget * 2.5);
        }
        else
        {
            await s2.PauseReplayAsync();
        }

        var pausedAt = clock.Elapsed;
        await Task.Delay(restart ? Budget : Budget / 2); // paused: S2 behind by less than the budget, still in rotation at the crash

        await primary.StopAsync(StopMode.Immediate);
        var crashedAt = clock.Elapsed;
        await s1.PromoteAsync();
        var promotedAt = clock.Elapsed;

        // What the history assumes of a promotion, checked on the server: a new timeline (the timeline column of the probe),
        // forked at or below any position the new primary reports afterwards (its first sample bounds the dead branch).
        var walFile = await s1.ScalarAsync<string>("SELECT pg_walfile_name(pg_current_wal_insert_lsn())");
        var insertAfterPromotion = NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(await s1.ScalarAsync<string>("SELECT pg_current_wal_insert_lsn()::text"));
        var timelineHistory = await s1.ScalarAsync<string>("SELECT pg_read_file('pg_wal/00000002.history')");
        var fork = NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(timelineHistory.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1].Split('\t')[1]);
        Assert.That(walFile, Does.StartWith("00000002"), "the promoted server writes a new timeline");
        Assert.That(fork, Is.LessThanOrEqualTo(insertAfterPromotion), "the fork is at or below the new primary's position");

        // Re-point the standbys at the new primary (they follow the new timeline by themselves: recovery_target_timeline is
        // latest), S2 last, once the others stream from it. S2 lacks the old primary's last writes, which the new primary has.
        foreach (var standby in servers.Standbys.Skip(1).OrderBy(standby => standby == s2))
        {
            var conninfo = await standby.ScalarAsync<string>("SELECT setting FROM pg_settings WHERE name = 'primary_conninfo'");
            var repointed = PortPattern().Replace(conninfo, $"port={s1.Port}");
            Assert.That(repointed, Is.Not.EqualTo(conninfo), "primary_conninfo names the old primary's port");
            await standby.ExecuteAsync($"ALTER SYSTEM SET primary_conninfo = '{repointed.Replace("'", "''", StringComparison.Ordinal)}'");
            await standby.ExecuteAsync("ALTER SYSTEM SET wal_retrieve_retry_interval = '100ms'");
            if (restart && standby == s2)
            {
                await standby.RestartAsync();
                continue;
            }

            await standby.ExecuteAsync("SELECT pg_reload_conf()");
            if (standby != s2)
            {
                var streaming = Stopwatch.StartNew();
                while (await standby.ScalarAsync<int?>("SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming'") != s1.Port)
                {
                    Assert.That(streaming.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)), $"{standby.Name} does not stream from the new primary");
                    await Task.Delay(20);
                }
            }
        }

        var repointedAt = clock.Elapsed;
        await Task.Delay(Budget * 1.5); // readers go on while S2 stays behind
        if (restart)
        {
            await s2.SetRecoveryMinApplyDelayAsync(TimeSpan.Zero);
        }
        else
        {
            await s2.ResumeReplayAsync();
        }

        var resumedAt = clock.Elapsed;

        // S2 caught up: it replayed what the new primary had written when its replay resumed (polled, bounded). The target is
        // taken once: the writers go on, and a standby under load could chase the primary's current position for ever (a
        // fresh clone's CI failed once that way).
        var target = await s1.ScalarAsync<string>("SELECT pg_current_wal_lsn()::text");
        TimeSpan? caughtUpAt = null;
        while (caughtUpAt is null && clock.Elapsed - resumedAt < TimeSpan.FromSeconds(20))
        {
            var replayed = await s2.ScalarAsync<string?>("SELECT pg_last_wal_replay_lsn()::text");
            if (replayed is not null && NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(replayed) >= NpgsqlTypes.NpgsqlLogSequenceNumber.Parse(target))
            {
                caughtUpAt = clock.Elapsed;
            }
            else
            {
                await Task.Delay(20);
            }
        }

        Assert.That(caughtUpAt, Is.Not.Null, "S2 never caught up with the new primary");
        TimeSpan? backAt = null;
        while (backAt is null && clock.Elapsed - caughtUpAt!.Value < TimeSpan.FromSeconds(10))
        {
            backAt = reads.Where(read => read.Port == s2.Port && read.StartedAt > caughtUpAt.Value).Select(read => (TimeSpan?)read.StartedAt).Min();
            await Task.Delay(20);
        }

        await Task.Delay(TimeSpan.FromMilliseconds(500));
        await stop.CancelAsync();
        await Task.WhenAll(loops);

        // Judged by the data: the writes the final primary has, each with when it was acknowledged.
        var onFinalPrimary = new HashSet<long>();
        await using (var final = new NpgsqlConnection(s1.ConnectionString))
        {
            await final.OpenAsync();
            await using var all = new NpgsqlCommand("SELECT id FROM ticks", final);
            await using var reader = await all.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                onFinalPrimary.Add(reader.GetInt64(0));
            }
        }

        var present = writes.Where(write => onFinalPrimary.Contains(write.Id)).OrderByDescending(write => write.Id).ToArray();

        // For each read, the oldest acknowledgement among present writes with a larger id than it returned (certain misses).
        var oldestAckAbove = new TimeSpan[present.Length];
        var oldest = TimeSpan.MaxValue;
        for (var i = 0; i < present.Length; i++)
        {
            oldest = present[i].AckedAt < oldest ? present[i].AckedAt : oldest;
            oldestAckAbove[i] = oldest;
        }

        TimeSpan Staleness((TimeSpan StartedAt, long Id, int Port) read)
        {
            var index = Array.FindLastIndex(present, write => write.Id > read.Id);
            return index < 0 ? TimeSpan.Zero : read.StartedAt - oldestAckAbove[index];
        }

        var judged = reads.Select(read => (Read: read, Staleness: Staleness(read))).ToArray();
        var stale = judged.Where(read => read.Staleness > Bound).ToArray();
        var worst = judged.Max(read => read.Staleness);
        var onS2 = reads.Count(read => read.Port == s2.Port);
        TestContext.Out.WriteLine(
            $"paused {pausedAt.TotalSeconds:0.00} s, crash {crashedAt.TotalSeconds:0.00} s, promoted {promotedAt.TotalSeconds:0.00} s (fork {fork}, new primary at {insertAfterPromotion}), S2 re-pointed {repointedAt.TotalSeconds:0.00} s, resumed {resumedAt.TotalSeconds:0.00} s, "
            + $"caught up {caughtUpAt!.Value.TotalSeconds:0.00} s, first read on S2 after that {backAt?.TotalSeconds:0.00} s "
            + $"({(backAt - caughtUpAt)?.TotalMilliseconds:0} ms after catching up); {writes.Count} writes acknowledged, {present.Length} on the final primary; "
            + $"{reads.Count} reads ({onS2} on S2, {reads.Count(read => read.Port == s1.Port)} on S1, {reads.Count(read => read.Port == primary.Port)} on P, "
            + $"{reads.Count(read => servers.Standbys.Count > 2 && read.Port == servers.Standbys[2].Port)} on S3), {failedReads} failed; "
            + $"{stale.Length} reads missed a write acknowledged more than {Bound.TotalMilliseconds:0} ms before they started "
            + $"({stale.Count(read => read.Read.Port == s2.Port)} of them on S2), worst {worst.TotalMilliseconds:0} ms");
        foreach (var line in cluster.Recorder.AllEvents.Where(e => e.EventId is >= 2000 and < 2100).Select(e => $"{e.EventId}: {e.Message}").Take(30))
        {
            TestContext.Out.WriteLine(line);
        }

        Assert.Multiple(() =>
        {
            Assert.That(stale, Is.Empty, $"reads older than the budget: worst {worst.TotalMilliseconds:0} ms");
            Assert.That(backAt, Is.Not.Null, "S2 never served a read after it caught up");
            Assert.That(backAt - caughtUpAt, Is.LessThan(TimeSpan.FromSeconds(5)), "S2 stayed out long after it caught up");
            Assert.That(reads.Count(read => read.Port == s2.Port && read.StartedAt < pausedAt), Is.GreaterThan(0), "S2 took reads before it fell behind");
        });
    }

    [GeneratedRegex(@"port=\d+")]
    private static partial Regex PortPattern();
}
