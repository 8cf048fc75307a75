using EfReplicaInterceptor.Failover;

namespace EfReplicaInterceptor.Tests.Failover;

/// <summary>The count of a server's operations in flight, and its closing: refused from then on, drained when the last one ends.</summary>
public sealed class ServerUsageTests
{
    [Test]
    public void Closing_with_nothing_in_flight_is_drained_at_once()
    {
        var usage = new ServerUsage();
        Assert.That(usage.CloseAsync().IsCompleted, Is.True);
        Assert.That(usage.TryEnter(), Is.False);
    }

    [Test]
    public void Closing_waits_for_every_operation_in_flight_and_refuses_new_ones()
    {
        var usage = new ServerUsage();
        Assert.That(usage.TryEnter(), Is.True);
        Assert.That(usage.TryEnter(), Is.True);

        var drained = usage.CloseAsync();
        Assert.Multiple(() =>
        {
            Assert.That(drained.IsCompleted, Is.False);
            Assert.That(usage.IsClosed, Is.True);
            Assert.That(usage.TryEnter(), Is.False, "nothing starts once closed");
            Assert.That(usage.InFlight, Is.EqualTo(2));
        });

        usage.Exit();
        Assert.That(drained.IsCompleted, Is.False);
        usage.Exit();
        Assert.That(drained.IsCompleted, Is.True);
        Assert.That(usage.CloseAsync(), Is.SameAs(drained), "closing twice is the same drain");
    }

    [Test]
    public async Task Concurrent_operations_and_a_close_never_lose_a_count()
    {
        for (var round = 0; round < 50; round++)
        {
            var usage = new ServerUsage();
            var entered = 0;
            var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
            {
                for (var i = 0; i < 1000; i++)
                {
                    if (usage.TryEnter())
                    {
                        Interlocked.Increment(ref entered);
                        usage.Exit();
                    }
                }
            })).ToArray();
            var drained = usage.CloseAsync();
            await Task.WhenAll(workers);
            await drained.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.That(usage.InFlight, Is.Zero);
        }
    }
}
