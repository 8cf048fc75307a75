using EfReplicaInterceptor.Failover;
using Microsoft.Extensions.Time.Testing;

namespace EfReplicaInterceptor.Tests.Failover;

/// <summary>
/// The cluster's one deadline timer on a fake clock: every watch is looked at when it is due, in order, whatever order it
/// was scheduled in; a watch that completes first is never looked at; thousands of watches share one timer; disposal
/// drops them all.
/// </summary>
public sealed class DeadlineTimerTests
{
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(1);

    [Test]
    public void Watches_with_different_deadlines_each_expire_at_their_own_whatever_order_they_were_started_in()
    {
        var clock = new CountingTimeProvider();
        using var timer = new DeadlineTimer(clock);
        var seconds = new[] { 5, 2, 9, 3, 3, 7, 4 };
        var watches = seconds.Select(deadline => PlainWatch(timer, TimeSpan.FromSeconds(deadline))).ToArray();

        for (var elapsed = 1; elapsed <= 10; elapsed++)
        {
            clock.Advance(TimeSpan.FromSeconds(1) - TimeSpan.FromMilliseconds(1));
            for (var i = 0; i < watches.Length; i++)
            {
                Assert.That(watches[i].Verdict, Is.EqualTo(seconds[i] < elapsed ? WatchVerdict.Unresponsive : WatchVerdict.None), $"watch {i} ({seconds[i]} s) 1 ms before {elapsed} s");
            }

            clock.Advance(TimeSpan.FromMilliseconds(1));
            for (var i = 0; i < watches.Length; i++)
            {
                Assert.That(watches[i].Verdict, Is.EqualTo(seconds[i] <= elapsed ? WatchVerdict.Unresponsive : WatchVerdict.None), $"watch {i} ({seconds[i]} s) at {elapsed} s");
            }
        }

        Assert.That(timer.Pending, Is.Zero);
        Assert.That(clock.TimersCreated, Is.EqualTo(1), "one timer for every watch");
    }

    [Test]
    public void A_watch_that_completes_first_leaves_the_timer_and_is_never_given_up_on()
    {
        var clock = new CountingTimeProvider();
        using var timer = new DeadlineTimer(clock);
        var early = PlainWatch(timer, TimeSpan.FromSeconds(2));
        var late = PlainWatch(timer, TimeSpan.FromSeconds(3));

        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.That(early.Complete(), Is.EqualTo(WatchVerdict.None));
        Assert.That(timer.Pending, Is.EqualTo(1));

        clock.Advance(TimeSpan.FromSeconds(1)); // the timer was set for the completed watch: it fires for nothing
        Assert.That(early.Verdict, Is.EqualTo(WatchVerdict.None));
        Assert.That(late.Verdict, Is.EqualTo(WatchVerdict.None));

        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.That(late.Verdict, Is.EqualTo(WatchVerdict.Unresponsive), "the timer was set again for the next watch");
        Assert.That(timer.Pending, Is.Zero);
    }

    [Test]
    public void Thousands_of_watches_at_once_share_one_timer_and_only_the_unfinished_ones_expire()
    {
        var clock = new CountingTimeProvider();
        using var timer = new DeadlineTimer(clock);
        var watches = new List<OperationWatch>();
        for (var i = 0; i < 5_000; i++)
        {
            watches.Add(PlainWatch(timer, TimeSpan.FromMilliseconds(3_000 + (i % 7))));
            if (i % 10 == 0)
            {
                clock.Advance(TimeSpan.FromMilliseconds(1));
            }
        }

        for (var i = 0; i < watches.Count; i += 2)
        {
            watches[i].Complete();
        }

        Assert.That(timer.Pending, Is.EqualTo(2_500));
        clock.Advance(TimeSpan.FromSeconds(4));

        Assert.That(watches.Where((_, i) => i % 2 == 0).Select(watch => watch.Verdict), Is.All.EqualTo(WatchVerdict.None));
        Assert.That(watches.Where((_, i) => i % 2 == 1).Select(watch => watch.Verdict), Is.All.EqualTo(WatchVerdict.Unresponsive));
        Assert.That(timer.Pending, Is.Zero);
        Assert.That(clock.TimersCreated, Is.EqualTo(1));
    }

    [Test]
    public void Watches_started_and_completed_on_many_threads_at_once_leave_nothing_behind()
    {
        var clock = new CountingTimeProvider();
        using var timer = new DeadlineTimer(clock);

        Parallel.For(0, 8, _ =>
        {
            for (var i = 0; i < 2_000; i++)
            {
                using var watch = PlainWatch(timer, TimeSpan.FromSeconds(1 + (i % 3)));
            }
        });

        Assert.That(timer.Pending, Is.Zero);
        var last = PlainWatch(timer, TimeSpan.FromSeconds(1));
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.That(last.Verdict, Is.EqualTo(WatchVerdict.Unresponsive), "the timer still works after the concurrent churn");
    }

    [Test]
    public void Disposing_the_timer_drops_every_watch_and_gives_none_up()
    {
        var clock = new CountingTimeProvider();
        var timer = new DeadlineTimer(clock);
        var watches = Enumerable.Range(1, 10).Select(i => PlainWatch(timer, TimeSpan.FromSeconds(i))).ToArray();

        timer.Dispose();
        var after = PlainWatch(timer, TimeSpan.FromSeconds(1));
        clock.Advance(TimeSpan.FromMinutes(1));

        Assert.That(timer.Pending, Is.Zero);
        Assert.That(watches.Append(after).Select(watch => watch.Verdict), Is.All.EqualTo(WatchVerdict.None));
        Assert.That(watches.Select(watch => watch.Complete()), Is.All.EqualTo(WatchVerdict.None), "completing after the disposal is harmless");
    }

    private static OperationWatch PlainWatch(DeadlineTimer timer, TimeSpan deadline)
        => new("the server", liveness: null, deadline, Grace, TimeSpan.Zero, timer, CancellationToken.None);

    /// <summary>A fake clock that counts the timers created on it.</summary>
    private sealed class CountingTimeProvider : FakeTimeProvider
    {
        public int TimersCreated { get; private set; }

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            TimersCreated++;
            return base.CreateTimer(callback, state, dueTime, period);
        }
    }
}
