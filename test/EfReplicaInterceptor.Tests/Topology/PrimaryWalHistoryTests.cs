using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Tests.Topology;

public sealed class PrimaryWalHistoryTests
{
    [Test]
    public void An_idle_primary_keeps_its_oldest_sample_so_a_caught_up_replica_has_no_lag()
    {
        var history = new PrimaryWalHistory();
        history.Add(timestamp: 10, lsn: 100);
        history.Add(timestamp: 20, lsn: 100); // idle: same position
        history.Add(timestamp: 30, lsn: 100);

        Assert.That(history.FirstUnreplayed(100), Is.Null);
        Assert.That(history.FirstUnreplayed(99), Is.EqualTo(10), "behind since the first sample it lacks");
    }

    [Test]
    public void A_replica_that_stopped_replaying_is_behind_since_the_first_position_it_lacks()
    {
        var history = new PrimaryWalHistory();
        history.Add(10, 100);
        history.Add(20, 150);
        history.Add(30, 200);

        Assert.That(history.FirstUnreplayed(150), Is.EqualTo(30));
        Assert.That(history.FirstUnreplayed(120), Is.EqualTo(20));
        Assert.That(history.Latest, Is.EqualTo(200));
    }

    [Test]
    public void Trimming_keeps_what_a_replica_still_needs_and_the_newest_sample()
    {
        var history = new PrimaryWalHistory(capacity: 4);
        for (var i = 1; i <= 6; i++)
        {
            history.Add(i * 10, (ulong)i * 100); // overflows the capacity: oldest dropped
        }

        history.Trim(minimumReplayLsn: 400);

        Assert.That(history.FirstUnreplayed(450), Is.EqualTo(50));
        history.Trim(minimumReplayLsn: 10_000);
        Assert.That(history.Latest, Is.EqualTo(600), "the newest sample survives any trim");
    }
}
