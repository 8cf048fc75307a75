using EfReplicaInterceptor.TestSupport;
using System.Diagnostics;
using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Containers;

/// <summary>
/// A standby whose container is paused: a hung host that still accepts TCP connections but never answers (the container
/// flavour of <c>PostgresServer.HangAsync</c>; the local-server chaos tests are in <c>Failover/HungServerTests</c>). Reads
/// leave it within the library's read deadline and one retry, none fails, and it serves reads again once it is back. It
/// reports what it measured: the longest read while the host hung, and when the first read went to the primary.
/// </summary>
[NonParallelizable]
public sealed class HungStandbyTests : ContainerShopFixture
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan PauseFor = TimeSpan.FromSeconds(7);
    private static readonly TimeSpan ReadDeadline = TimeSpan.FromSeconds(1);

    /// <summary>The deadline and one retry, with room for a busy machine: still well under the pause.</summary>
    private static readonly TimeSpan ReadBound = ReadDeadline * 3 + TimeSpan.FromSeconds(2);

    [Test]
    public async Task Reads_sent_to_a_paused_standby_move_to_the_primary_within_the_deadline_and_it_serves_reads_again_once_back()
    {
        await using var cluster = await TestCluster.CreateAsync(Servers, options =>
        {
            options.HealthCheckInterval = Interval;
            options.HealthCheckTimeout = TimeSpan.FromMilliseconds(500);
            options.Failover.ReadDeadline = ReadDeadline;
            options.MaxReplicaLag = TimeSpan.FromSeconds(30);
        });
        var clock = Stopwatch.StartNew();

        async Task<(ServerSide Side, TimeSpan StartedAt, TimeSpan Took)> Read()
        {
            var startedAt = clock.Elapsed;
            await using var context = cluster.NewContext();
            var side = await context.WhereAmI().SingleAsync();
            return (side, startedAt, clock.Elapsed - startedAt);
        }

        var onStandbyBefore = 0;
        while (onStandbyBefore < 10 && clock.Elapsed < TimeSpan.FromSeconds(15))
        {
            onStandbyBefore += (await Read()).Side.Port == Servers.Standby.Port ? 1 : 0;
        }

        // One read every 250 ms while the host hangs, none waited for: each goes wherever the library sends it.
        var reads = new List<Task<(ServerSide Side, TimeSpan StartedAt, TimeSpan Took)>>();
        await Servers.Standby.PauseContainerAsync();
        var pausedAt = clock.Elapsed;
        try
        {
            while (clock.Elapsed - pausedAt < PauseFor)
            {
                reads.Add(Read());
                await Task.Delay(250);
            }
        }
        finally
        {
            await Servers.Standby.UnpauseContainerAsync();
        }

        var unpausedAt = clock.Elapsed;
        var all = Task.WhenAll(reads);
        var finished = await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(60))) == all;
        var completed = reads.Where(r => r.IsCompletedSuccessfully).Select(r => r.Result).ToList();
        var longest = completed.Count > 0 ? completed.Max(r => r.Took) : TimeSpan.Zero;
        var firstOnPrimary = completed.Where(r => r.Side.Port == Servers.Primary.Port).Select(r => (TimeSpan?)(r.StartedAt - pausedAt)).Min();

        TimeSpan? backAfter = null;
        while (backAfter is null && clock.Elapsed - unpausedAt < TimeSpan.FromSeconds(20))
        {
            if ((await Read()).Side.Port == Servers.Standby.Port)
            {
                backAfter = clock.Elapsed - unpausedAt;
            }

            await Task.Delay(20);
        }

        TestContext.Out.WriteLine(
            $"paused standby ({PauseFor.TotalSeconds:0} s, read deadline {ReadDeadline.TotalSeconds:0.#} s): {reads.Count} reads started, the longest took "
            + $"{longest.TotalMilliseconds:0} ms (bound {ReadBound.TotalMilliseconds:0} ms), {completed.Count(r => r.Side.Port == Servers.Primary.Port)} went to the primary, "
            + $"the first {(firstOnPrimary is { } first ? $"{first.TotalMilliseconds:0} ms" : "never")} after the pause; "
            + $"{reads.Count(r => r.IsFaulted)} failed; back on the standby {backAfter?.TotalMilliseconds:0} ms after it came back");
        Assert.Multiple(() =>
        {
            Assert.That(onStandbyBefore, Is.GreaterThanOrEqualTo(10), "the standby served reads before the pause, or the test proves nothing");
            Assert.That(finished, Is.True, "reads did not finish within 60 s after the standby came back");
            Assert.That(reads.Where(r => r.IsFaulted).Select(r => r.Exception!.InnerException!.Message), Is.Empty, "a read failed");
            Assert.That(longest, Is.LessThanOrEqualTo(ReadBound), "a read waited on the hung standby past the deadline and one retry");
            Assert.That(completed.Where(r => r.StartedAt > pausedAt + ReadBound).Select(r => r.Side.Port), Has.None.EqualTo(Servers.Standby.Port), "the paused standby answered a read");
            Assert.That(backAfter, Is.Not.Null, "the standby did not serve reads again after it came back");
        });
    }
}
