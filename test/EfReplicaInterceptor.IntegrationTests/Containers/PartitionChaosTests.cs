using EfReplicaInterceptor.TestSupport;
using System.Diagnostics;
using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Containers;

/// <summary>
/// Network partitions only containers can make, against the library's routing, proven from the servers' side
/// (<c>inet_server_port()</c> of the server that ran each read). Each test heals its partition and checks the standby
/// comes back into rotation.
/// </summary>
[NonParallelizable]
public sealed class PartitionChaosTests : ContainerShopFixture
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);

    /// <summary>Reading takes time and the writer's clock and the reader's are sampled apart; stated slack for both.</summary>
    private static readonly TimeSpan Margin = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// The deadline a read is held to after the application loses a standby: its health probe's timeout
    /// (<c>HealthCheckTimeout</c>, 2 s by default), the longest it promises to spend finding out that a replica is gone
    /// (a partition refuses or resets connections; a host that accepts them and never answers is the hung-standby test's).
    /// </summary>
    private static readonly TimeSpan ReadDeadline = TimeSpan.FromSeconds(2);

    [Test]
    public async Task A_standby_partitioned_from_the_primary_still_answers_but_leaves_the_rotation_within_its_lag_budget()
    {
        await using var cluster = await TestCluster.CreateAsync(Servers, options =>
        {
            options.MaxReplicaLag = Budget;
            options.HealthCheckInterval = Interval;
        });
        await using var writer = new TickWriter(Servers.Primary, TimeSpan.FromMilliseconds(100));
        var clock = Stopwatch.StartNew();
        var partitionedAt = TimeSpan.Zero;
        var healedAt = TimeSpan.Zero;
        TimeSpan? leftAfter = null, backAfter = null;
        var worst = TimeSpan.Zero;
        int onStandbyBefore = 0, onStandbyAfterLeaving = 0, readsAfterLeaving = 0;

        async Task ReadOnce()
        {
            var newestCommitted = writer.LastCommitted;
            await using var context = cluster.NewContext();
            var row = await context.Ticks.OrderByDescending(t => t.Id)
                .Select(t => new { t.CreatedAt, Port = ShopContext.ServerPort() }).FirstAsync();
            var onStandby = row.Port == Servers.Standby.Port;
            var staleness = newestCommitted - row.CreatedAt.ToUniversalTime();
            if (partitionedAt == TimeSpan.Zero)
            {
                onStandbyBefore += onStandby ? 1 : 0;
                return;
            }

            if (healedAt == TimeSpan.Zero)
            {
                worst = staleness > worst ? staleness : worst;
                if (leftAfter is null && !onStandby)
                {
                    leftAfter = clock.Elapsed - partitionedAt;
                }
                else if (leftAfter is not null)
                {
                    readsAfterLeaving++;
                    onStandbyAfterLeaving += onStandby ? 1 : 0;
                }
            }
            else if (onStandby && backAfter is null)
            {
                backAfter = clock.Elapsed - healedAt;
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

        // The monitor admits the standby after its first probes; read until it serves reads.
        while (onStandbyBefore < 10 && clock.Elapsed < TimeSpan.FromSeconds(15))
        {
            await ReadOnce();
            await Task.Delay(20);
        }

        await Servers.Standby.DisconnectFromServersAsync();
        partitionedAt = clock.Elapsed;
        var receivedAtPartition = await Servers.Standby.ScalarAsync<string>("SELECT pg_last_wal_receive_lsn()::text");
        var primaryAtPartition = await Servers.Primary.ScalarAsync<string>("SELECT pg_current_wal_lsn()::text");
        string? receiverStatus;
        bool stillAnswers, receiveStood, primaryMoved;
        try
        {
            await ReadFor(TimeSpan.FromSeconds(4));

            // From the servers' side: the standby still answers, as a standby, and has received nothing more while the
            // primary went on writing. (Its WAL receiver may still say 'streaming': a partition sends no reset, so it
            // only gives up after wal_receiver_timeout; the LSNs are the honest signal.)
            stillAnswers = await Servers.Standby.ScalarAsync<bool>("SELECT pg_is_in_recovery()");
            receiverStatus = await Servers.Standby.ScalarAsync<string?>("SELECT status FROM pg_stat_wal_receiver");
            receiveStood = await Servers.Standby.ScalarAsync<bool>($"SELECT pg_last_wal_receive_lsn() = '{receivedAtPartition}'::pg_lsn");
            primaryMoved = await Servers.Primary.ScalarAsync<bool>($"SELECT pg_current_wal_lsn() > '{primaryAtPartition}'::pg_lsn");
        }
        finally
        {
            await Servers.Standby.ReconnectAsync();
        }

        healedAt = clock.Elapsed;
        while (backAfter is null && clock.Elapsed - healedAt < TimeSpan.FromSeconds(20))
        {
            await ReadOnce();
            await Task.Delay(20);
        }

        var bound = Budget + Interval + Margin;
        TestContext.Out.WriteLine(
            $"partitioned standby: left the rotation {leftAfter?.TotalMilliseconds:0} ms after the partition (bound {bound.TotalMilliseconds:0} ms); "
            + $"worst staleness {worst.TotalMilliseconds:0} ms; {readsAfterLeaving} reads after it left, {onStandbyAfterLeaving} of them on the standby; "
            + $"WAL receiver '{receiverStatus ?? "not running"}'; back {backAfter?.TotalMilliseconds:0} ms after the heal; {writer.Written} rows written");
        Assert.Multiple(() =>
        {
            Assert.That(onStandbyBefore, Is.GreaterThanOrEqualTo(10), "the standby served reads before the partition, or the test proves nothing");
            Assert.That(stillAnswers, Is.True, "the partitioned standby still answers as a standby");
            Assert.That(primaryMoved, Is.True, "the primary wrote nothing during the partition, so no lag could grow");
            Assert.That(receiveStood, Is.True, "WAL still reached the standby: the partition did not stop replication");
            Assert.That(leftAfter, Is.Not.Null.And.LessThanOrEqualTo(bound), "the partitioned standby did not leave the rotation within its lag budget");
            Assert.That(worst, Is.LessThanOrEqualTo(bound), "a read returned data older than the budget allows");
            Assert.That(readsAfterLeaving, Is.GreaterThan(50));
            Assert.That(onStandbyAfterLeaving, Is.Zero, "a read went back to the partitioned standby");
            Assert.That(backAfter, Is.Not.Null, "reads did not return to the standby after the partition healed");
        });
    }

    [Test]
    public async Task Reads_move_to_the_primary_within_the_read_deadline_when_the_application_loses_a_standby()
    {
        await using var cluster = await TestCluster.CreateAsync(Servers, options =>
        {
            options.MaxReplicaLag = TimeSpan.FromSeconds(30); // lag must not be what moves the reads here
            options.HealthCheckInterval = Interval;
        });
        var startedBefore = await Servers.Standby.ScalarAsync<DateTime>("SELECT pg_postmaster_start_time()");
        var clock = Stopwatch.StartNew();
        var slowest = TimeSpan.Zero;
        int onStandbyBefore = 0, onStandbyDuring = 0, onPrimaryDuring = 0;
        var failures = new List<string>();
        var partitioned = false;

        async Task ReadOnce()
        {
            var watch = Stopwatch.StartNew();
            try
            {
                await using var context = cluster.NewContext();
                var side = await context.WhereAmI().SingleAsync();
                if (!partitioned)
                {
                    onStandbyBefore += side.Port == Servers.Standby.Port ? 1 : 0;
                    return;
                }

                if (side.Port == Servers.Standby.Port)
                {
                    onStandbyDuring++;
                }
                else if (side.Port == Servers.Primary.Port && !side.InRecovery)
                {
                    onPrimaryDuring++;
                }
            }
            catch (Exception exception) when (exception is NpgsqlException or InvalidOperationException or DbUpdateException)
            {
                failures.Add($"{exception.GetType().Name}: {exception.Message}");
            }
            finally
            {
                if (partitioned && watch.Elapsed > slowest)
                {
                    slowest = watch.Elapsed;
                }
            }
        }

        // Warm the standby's pool: the partition must also cut sessions that are already open.
        for (var i = 0; i < 20; i++)
        {
            await ReadOnce();
        }

        await Servers.Standby.DisconnectFromApplicationAsync();
        partitioned = true;
        var partitionedAt = clock.Elapsed;
        bool standbyRunning;
        try
        {
            while (clock.Elapsed - partitionedAt < TimeSpan.FromSeconds(3))
            {
                await ReadOnce();
                await Task.Delay(10);
            }

            standbyRunning = Servers.Standby.IsRunning;
        }
        finally
        {
            await Servers.Standby.ReconnectAsync();
        }

        partitioned = false;
        var healedAt = clock.Elapsed;
        TimeSpan? backAfter = null;
        while (backAfter is null && clock.Elapsed - healedAt < TimeSpan.FromSeconds(20))
        {
            var before = onStandbyBefore;
            await ReadOnce();
            if (onStandbyBefore > before)
            {
                backAfter = clock.Elapsed - healedAt;
            }

            await Task.Delay(20);
        }

        TestContext.Out.WriteLine(
            $"application partitioned from the standby: {onPrimaryDuring} reads on the primary, {onStandbyDuring} on the standby, {failures.Count} failed; "
            + $"slowest read {slowest.TotalMilliseconds:0} ms (deadline {ReadDeadline.TotalMilliseconds:0} ms); back on the standby {backAfter?.TotalMilliseconds:0} ms after the heal"
            + (failures.Count > 0 ? $"; first failure: {failures[0]}" : string.Empty));
        Assert.Multiple(() =>
        {
            Assert.That(onStandbyBefore, Is.GreaterThan(5), "the standby served reads before the partition, or the test proves nothing");
            Assert.That(failures, Is.Empty, "a read failed instead of moving to the primary");
            Assert.That(onStandbyDuring, Is.Zero, "a read reached the standby through the partition");
            Assert.That(onPrimaryDuring, Is.GreaterThan(20));
            Assert.That(slowest, Is.LessThanOrEqualTo(ReadDeadline), "a read waited on the lost standby longer than the deadline");
            Assert.That(standbyRunning, Is.True, "the standby kept running through the partition");
            Assert.That(backAfter, Is.Not.Null, "reads did not return to the standby after the partition healed");
        });
        Assert.That(await Servers.Standby.ScalarAsync<DateTime>("SELECT pg_postmaster_start_time()"), Is.EqualTo(startedBefore), "the same server ran on through the partition");
    }
}
