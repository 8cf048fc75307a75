using EfReplicaInterceptor.Topology;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Topology;

/// <summary>
/// What the cluster is known to have written and since when: the primary's samples across primary changes and timelines,
/// the standbys' positions while no primary answers, and trimming that never forgets what a listed replica lacks.
/// </summary>
public sealed class ClusterWalHistoryTests
{
    private const ulong SystemId = 7_000_000_000_000_000_001;

    private readonly List<NpgsqlDataSource> _dataSources = [];

    [TearDown]
    public void DisposeDataSources()
    {
        foreach (var dataSource in _dataSources)
        {
            dataSource.Dispose();
        }

        _dataSources.Clear();
    }

    [Test]
    public void An_idle_primary_keeps_its_oldest_sample_so_a_caught_up_replica_has_no_lag()
    {
        var history = new ClusterWalHistory();
        history.AddPrimarySample(timestamp: 10, lsn: 100);
        history.AddPrimarySample(timestamp: 20, lsn: 100); // idle: same position
        history.AddPrimarySample(timestamp: 30, lsn: 100);

        Assert.That(history.FirstUnreplayed(100), Is.Null);
        Assert.That(history.FirstUnreplayed(99), Is.EqualTo(10), "behind since the first sample it lacks");
    }

    [Test]
    public void A_replica_that_stopped_replaying_is_behind_since_the_first_position_it_lacks()
    {
        var history = new ClusterWalHistory();
        history.AddPrimarySample(10, 100);
        history.AddPrimarySample(20, 150);
        history.AddPrimarySample(30, 200);

        Assert.That(history.FirstUnreplayed(150), Is.EqualTo(30));
        Assert.That(history.FirstUnreplayed(120), Is.EqualTo(20));
        Assert.That(history.Latest, Is.EqualTo(200));
    }

    [Test]
    public void Trimming_keeps_what_a_replica_still_needs_and_the_newest_sample()
    {
        var history = new ClusterWalHistory(capacity: 4);
        for (var i = 1; i <= 6; i++)
        {
            history.AddPrimarySample(i * 10, (ulong)i * 100); // overflows the capacity: oldest dropped
        }

        history.Trim(minimumReplayLsn: 400);

        Assert.That(history.FirstUnreplayed(450), Is.EqualTo(50));
        history.Trim(minimumReplayLsn: 10_000);
        Assert.That(history.Latest, Is.EqualTo(600), "the newest sample survives any trim");
    }

    [Test]
    public void A_new_primary_does_not_restart_the_clock_a_standby_lacking_the_old_primarys_writes_is_behind_since_they_were_written()
    {
        var history = new ClusterWalHistory();
        history.AddPrimarySample(10, 100, SystemId, timeline: 1);
        history.AddPrimarySample(20, 200, SystemId, timeline: 1);
        history.AddPrimarySample(30, 300, SystemId, timeline: 1);
        history.PrimaryMissing(unanswered: true); // the old primary crashed

        history.AddPrimarySample(50, 320, SystemId, timeline: 2); // the promoted standby had everything: fork at 300

        Assert.Multiple(() =>
        {
            Assert.That(history.FirstUnreplayed(150), Is.EqualTo(20), "lacks the old primary's 200, written by 20");
            Assert.That(history.FirstUnreplayed(300), Is.EqualTo(50), "has all the old primary wrote: lacks only the new timeline");
            Assert.That(history.FirstUnreplayed(320), Is.Null);
            Assert.That(history.PrimaryUnanswered, Is.False, "the new primary's sample clears it");
        });
    }

    [Test]
    public void The_dead_branch_above_the_new_primarys_first_sample_is_dropped_so_no_standby_looks_behind_for_it()
    {
        var history = new ClusterWalHistory();
        history.AddPrimarySample(10, 100, SystemId, timeline: 1);
        history.AddPrimarySample(20, 200, SystemId, timeline: 1);
        history.AddPrimarySample(30, 300, SystemId, timeline: 1); // the promoted standby never got past 220: 300 is lost

        history.AddPrimarySample(50, 250, SystemId, timeline: 2); // fork at or below 250

        Assert.Multiple(() =>
        {
            Assert.That(history.Latest, Is.EqualTo(250));
            Assert.That(history.FirstUnreplayed(250), Is.Null, "a standby with the new timeline's first sample lacks nothing that exists");
            Assert.That(history.FirstUnreplayed(230), Is.EqualTo(50));
            Assert.That(history.FirstUnreplayed(150), Is.EqualTo(20), "the shared history below the fork stays");
        });

        history.AddPrimarySample(60, 400, SystemId, timeline: 2);
        Assert.That(history.FirstUnreplayed(300), Is.EqualTo(60), "the new timeline's 400 is new data; the old 300 counts no more");
    }

    [Test]
    public void A_dead_position_below_the_new_primarys_first_sample_errs_on_the_safe_side_only_until_that_sample_is_replayed()
    {
        var history = new ClusterWalHistory();
        history.AddPrimarySample(10, 200, SystemId, timeline: 1);
        history.AddPrimarySample(20, 240, SystemId, timeline: 1); // lost: the promoted standby forked at 220

        history.AddPrimarySample(50, 250, SystemId, timeline: 2);

        Assert.That(history.FirstUnreplayed(230), Is.EqualTo(20), "conservative: it may lack 230..240 of the new timeline");
        Assert.That(history.FirstUnreplayed(250), Is.Null, "ends once it replays the new timeline's first sample");
    }

    [Test]
    public void A_primary_of_another_cluster_starts_the_history_again()
    {
        var history = new ClusterWalHistory();
        history.AddPrimarySample(10, 5_000, SystemId, timeline: 1);

        history.AddPrimarySample(20, 100, SystemId + 1, timeline: 1);

        Assert.That(history.Latest, Is.EqualTo(100));
        Assert.That(history.FirstUnreplayed(50), Is.EqualTo(20));
    }

    [Test]
    public void While_no_primary_answers_a_standby_behind_another_is_behind_since_the_others_position_was_first_seen()
    {
        var history = new ClusterWalHistory();
        history.AddPrimarySample(10, 100, SystemId, timeline: 1);
        history.PrimaryMissing(unanswered: true);

        Assert.That(history.TryMeasureStandby(20, replay: 150, streaming: false, out var ahead, out var latest), Is.True);
        Assert.That((ahead, latest), Is.EqualTo(((long?)null, 150UL)), "the most advanced standby lacks nothing known");

        Assert.That(history.TryMeasureStandby(30, replay: 120, streaming: false, out var behind, out latest), Is.True);
        Assert.That((behind, latest), Is.EqualTo(((long?)20, 150UL)), "lacks 150, first seen at 20");

        history.TryMeasureStandby(40, replay: 150, streaming: false, out _, out _); // seen again: the first sighting counts
        history.TryMeasureStandby(50, replay: 120, streaming: false, out behind, out _);
        Assert.That(behind, Is.EqualTo(20));
        Assert.That(history.TryMeasureStandby(60, replay: 90, streaming: false, out var older, out _) && older == 10, Is.True, "below the primary's last sample: since then");
    }

    [Test]
    public void A_primary_that_answers_as_a_standby_is_no_primary_the_standbys_are_compared()
    {
        var history = new ClusterWalHistory();
        history.AddPrimarySample(10, 100, SystemId, timeline: 1);
        history.PrimaryMissing(unanswered: false);

        history.TryMeasureStandby(20, replay: 150, streaming: false, out _, out _);

        Assert.That(history.FirstUnreplayed(120), Is.EqualTo(20));
        Assert.That(history.PrimaryUnanswered, Is.False);
    }

    [Test]
    public void While_the_primary_answers_a_standby_ahead_of_its_newest_sample_is_no_evidence()
    {
        var history = new ClusterWalHistory();
        history.AddPrimarySample(10, 100, SystemId, timeline: 2);

        history.TryMeasureStandby(20, replay: 150, streaming: true, out _, out _); // a dead branch, or a sample ahead by less than an interval

        Assert.That(history.FirstUnreplayed(120), Is.Null);
        Assert.That(history.Latest, Is.EqualTo(100));
    }

    [TestCase(false, true, Description = "no upstream either: compared with the other standbys")]
    [TestCase(true, false, Description = "still streaming from a primary no probe has seen: unknown")]
    public void A_primary_never_sampled_and_unanswered_compares_the_standbys_without_an_upstream(bool streaming, bool known)
    {
        var history = new ClusterWalHistory();
        history.PrimaryMissing(unanswered: true);
        history.TryMeasureStandby(10, replay: 200, streaming: false, out _, out _);

        var measured = history.TryMeasureStandby(20, replay: 150, streaming, out var since, out _);

        Assert.That(measured, Is.EqualTo(known));
        if (known)
        {
            Assert.That(since, Is.EqualTo(10), "behind the other standby since its position was first seen");
        }
    }

    [Test]
    public void A_primary_never_sampled_that_answers_from_elsewhere_leaves_the_lag_unknown()
    {
        var history = new ClusterWalHistory();
        history.PrimaryMissing(unanswered: false); // the configured primary answers as a standby

        Assert.That(history.TryMeasureStandby(10, replay: 200, streaming: false, out _, out _), Is.False);
    }

    [Test]
    public void Trimming_for_the_replicas_keeps_what_one_that_does_not_answer_lacks()
    {
        var history = new ClusterWalHistory();
        for (var i = 1; i <= 5; i++)
        {
            history.AddPrimarySample(i * 10, (ulong)i * 100);
        }

        var (down, caughtUp) = (Replica(0), Replica(1));
        down.ObserveReplay(150, startedAtTicks: 1, sampledAt: 5);
        down.Health = new ReplicaHealth { Reachable = false, Problem = "unreachable: restarting" };
        caughtUp.ObserveReplay(500, startedAtTicks: 1, sampledAt: 5);
        caughtUp.Health = new ReplicaHealth { Reachable = true, InRecovery = true, ReplayLsn = 500 };

        history.TrimFor([down, caughtUp]);

        Assert.That(history.FirstUnreplayed(150), Is.EqualTo(20), "the replica that does not answer still lacks 200, written by 20");
    }

    [Test]
    public void Trimming_for_the_replicas_ignores_one_that_answers_as_a_primary_and_waits_for_one_never_seen()
    {
        var history = new ClusterWalHistory();
        for (var i = 1; i <= 5; i++)
        {
            history.AddPrimarySample(i * 10, (ulong)i * 100);
        }

        var (promoted, standby, neverSeen) = (Replica(0), Replica(1), Replica(2));
        promoted.ObserveReplay(100, startedAtTicks: 1, sampledAt: 5);
        promoted.Health = new ReplicaHealth { Reachable = true, InRecovery = false, Problem = "not a standby" };
        standby.ObserveReplay(400, startedAtTicks: 1, sampledAt: 5);
        standby.Health = new ReplicaHealth { Reachable = true, InRecovery = true, ReplayLsn = 400 };

        history.TrimFor([promoted, standby, neverSeen]);
        Assert.That(history.FirstUnreplayed(0), Is.EqualTo(10), "a replica never seen may lack anything: nothing is forgotten");

        history.TrimFor([promoted, standby]);
        Assert.That(history.FirstUnreplayed(0), Is.EqualTo(50), "only what the standby lacks is kept");
    }

    private ReplicaEndpoint Replica(int index)
    {
        var dataSource = NpgsqlDataSource.Create("Host=127.0.0.1;Port=1;Database=none;Username=nobody");
        _dataSources.Add(dataSource);
        return new ReplicaEndpoint(index, $"r{index}", dataSource, TimeProvider.System, TimeSpan.FromSeconds(1));
    }
}
