using EfReplicaInterceptor.TestSupport;
using System.Diagnostics;
using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Containers;

/// <summary>
/// A standby whose container is paused: a hung host that still accepts TCP connections but never answers. The library
/// has no read deadline yet (issue 14), so it cannot promise that reads leave a hung replica within any time; this
/// test asserts what it does promise — a read sent to the hung standby is held, not lost or misrouted, and completes
/// correctly once the host comes back, and the standby then serves reads again — and it reports what it measured:
/// how many reads the hung standby held, for how long, and when the first read went to the primary instead.
/// </summary>
[NonParallelizable]
public sealed class HungStandbyTests : ContainerShopFixture
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan PauseFor = TimeSpan.FromSeconds(4);

    [Test]
    public async Task Reads_sent_to_a_paused_standby_are_held_until_it_comes_back_then_complete_there_and_it_serves_reads_again()
    {
        await using var cluster = await TestCluster.CreateAsync(Servers, options =>
        {
            options.HealthCheckInterval = Interval;
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
        var held = completed.Where(r => r.StartedAt + r.Took >= unpausedAt).ToList();
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
            $"paused standby ({PauseFor.TotalSeconds:0} s): {reads.Count} reads started, {held.Count} held by the hung standby until it came back "
            + $"(longest {(held.Count > 0 ? held.Max(r => r.Took).TotalMilliseconds : 0):0} ms), {completed.Count(r => r.Side.Port == Servers.Primary.Port)} went to the primary, "
            + $"the first {(firstOnPrimary is { } first ? $"{first.TotalMilliseconds:0} ms" : "never")} after the pause; "
            + $"{reads.Count(r => r.IsFaulted)} failed; back on the standby {backAfter?.TotalMilliseconds:0} ms after it came back");
        Assert.Multiple(() =>
        {
            Assert.That(onStandbyBefore, Is.GreaterThanOrEqualTo(10), "the standby served reads before the pause, or the test proves nothing");
            Assert.That(finished, Is.True, "reads held by the hung standby did not finish within 60 s after it came back");
            Assert.That(reads.Where(r => r.IsFaulted).Select(r => r.Exception!.InnerException!.Message), Is.Empty, "a read failed");
            Assert.That(held, Is.Not.Empty, "no read was held: the pause did not hang the standby, or the test proves nothing");
            Assert.That(held.Select(r => r.Side.Port), Is.All.EqualTo(Servers.Standby.Port), "a held read completed somewhere other than the hung standby");
            Assert.That(backAfter, Is.Not.Null, "the standby did not serve reads again after it came back");
        });
    }
}
