using EfReplicaInterceptor.Topology;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Topology;

/// <summary>
/// A replica's lag on a fake clock, against what the cluster is known to have written: across a primary change, while no
/// primary answers, and through a restart that kept the replica silent; and the budget checked again at selection.
/// </summary>
public sealed class ReplicaHealthMeterTests
{
    private const ulong SystemId = 7_000_000_000_000_000_001;
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);

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
    public void A_standby_silent_through_a_failover_is_measured_against_the_old_primarys_writes_when_it_answers_again()
    {
        // The failure: S2 (behind) restarts to follow the new primary while S3 (caught up) answers; the history was
        // trimmed to what S3 had, and S2 came back looking 0.5 s behind while it lacked writes from seconds before.
        var time = new FakeTimeProvider();
        var history = new ClusterWalHistory();
        var meter = new ReplicaHealthMeter(history, Budget, maxLagBytes: null, time);
        var (s2, s3) = (Replica(0, time), Replica(1, time));
        history.AddPrimarySample(time.GetTimestamp(), 1_000, SystemId, timeline: 1);
        s2.ObserveReplay(1_000, startedAtTicks: 1, time.GetTimestamp()); // S2 stops replaying here
        for (var lsn = 1_100UL; lsn <= 2_000; lsn += 100)
        {
            time.Advance(Interval);
            history.AddPrimarySample(time.GetTimestamp(), lsn, SystemId, timeline: 1);
        }

        history.PrimaryMissing(unanswered: true); // the primary crashed; S1 promoted
        time.Advance(Interval);
        history.AddPrimarySample(time.GetTimestamp(), 2_100, SystemId, timeline: 2);
        s2.Health = new ReplicaHealth { Reachable = false, Problem = "unreachable: restarting" };
        s3.ObserveReplay(2_100, startedAtTicks: 1, time.GetTimestamp());
        s3.Health = meter.Measure(inRecovery: true, replay: 2_100, streaming: true);
        history.TrimFor([s2, s3]);

        time.Advance(Interval);
        var health = meter.Measure(inRecovery: true, replay: 1_000, streaming: true);

        Assert.Multiple(() =>
        {
            Assert.That(health.Lag, Is.EqualTo(Interval * 11), "behind since the old primary's 1,100 was sampled");
            Assert.That(health.IsLagging, Is.True);
            Assert.That(health.LagBytes, Is.EqualTo(1_100));
            Assert.That(s3.Health.Lag, Is.EqualTo(TimeSpan.Zero));
        });
    }

    [Test]
    public void While_no_primary_answers_the_standby_behind_the_other_is_lagging_once_the_budget_has_passed_since_the_others_position_was_seen()
    {
        var time = new FakeTimeProvider();
        var history = new ClusterWalHistory();
        var meter = new ReplicaHealthMeter(history, Budget, maxLagBytes: null, time);
        history.AddPrimarySample(time.GetTimestamp(), 1_000, SystemId, timeline: 1);
        history.PrimaryMissing(unanswered: true); // it wrote up to 1,500 after its last sample, and died

        var ahead = meter.Measure(inRecovery: true, replay: 1_500, streaming: false);
        time.Advance(Budget / 2);
        var behindSoon = meter.Measure(inRecovery: true, replay: 1_200, streaming: false);
        time.Advance(Budget);
        var behindLater = meter.Measure(inRecovery: true, replay: 1_200, streaming: false);
        var aheadLater = meter.Measure(inRecovery: true, replay: 1_500, streaming: false);

        Assert.Multiple(() =>
        {
            Assert.That((ahead.Lag, ahead.IsLagging), Is.EqualTo(((TimeSpan?)TimeSpan.Zero, false)));
            Assert.That((behindSoon.Lag, behindSoon.IsLagging, behindSoon.LagBytes), Is.EqualTo(((TimeSpan?)(Budget / 2), false, (long?)300)));
            Assert.That((behindLater.Lag, behindLater.IsLagging), Is.EqualTo(((TimeSpan?)(Budget * 1.5), true)));
            Assert.That(behindLater.Problem, Does.Contain("over the budget"));
            Assert.That(aheadLater.Lag, Is.EqualTo(TimeSpan.Zero), "the most advanced standby is as fresh as the cluster can be");
        });
    }

    [Test]
    public void A_new_primary_first_sampled_after_the_crash_does_not_restart_a_lagging_standbys_clock()
    {
        var time = new FakeTimeProvider();
        var history = new ClusterWalHistory();
        var meter = new ReplicaHealthMeter(history, Budget, maxLagBytes: null, time);
        history.AddPrimarySample(time.GetTimestamp(), 1_000, SystemId, timeline: 1);
        time.Advance(Interval);
        history.AddPrimarySample(time.GetTimestamp(), 1_100, SystemId, timeline: 1); // the standby stopped before this
        time.Advance(TimeSpan.FromSeconds(10)); // the outage: no primary answers
        history.PrimaryMissing(unanswered: true);
        history.AddPrimarySample(time.GetTimestamp(), 1_300, SystemId, timeline: 2);

        var health = meter.Measure(inRecovery: true, replay: 1_050, streaming: true);

        Assert.That(health.Lag, Is.EqualTo(TimeSpan.FromSeconds(10)));
        Assert.That(health.IsLagging, Is.True);
    }

    [Test]
    public void The_primary_never_sampled_and_a_standby_still_streaming_leaves_its_lag_unknown()
    {
        var time = new FakeTimeProvider();
        var history = new ClusterWalHistory();
        var meter = new ReplicaHealthMeter(history, Budget, maxLagBytes: null, time);
        history.PrimaryMissing(unanswered: true);

        var health = meter.Measure(inRecovery: true, replay: 1_000, streaming: true);

        Assert.That((health.Lag, health.IsLagging), Is.EqualTo(((TimeSpan?)null, true)));
        Assert.That(health.Problem, Does.StartWith("lag unknown"));
    }

    [Test]
    public void A_standby_measured_behind_another_while_no_primary_answers_leaves_the_selection_when_the_budget_runs_out_between_probes()
    {
        var time = new FakeTimeProvider();
        var history = new ClusterWalHistory();
        var meter = new ReplicaHealthMeter(history, Budget, maxLagBytes: null, time);
        var replica = Replica(0, time);
        var selector = new ReplicaSelector([replica], LoadBalancing.RoundRobin, [1], time, Budget, Interval);
        history.PrimaryMissing(unanswered: true);
        history.AddPrimarySample(time.GetTimestamp(), 1_000, SystemId, timeline: 1);
        history.PrimaryMissing(unanswered: true);
        meter.Measure(inRecovery: true, replay: 1_500, streaming: false); // another standby has more
        time.Advance(Budget * 0.6);

        var health = meter.Measure(inRecovery: true, replay: 1_200, streaming: false);
        replica.Health = health;
        replica.Availability.ReportProbe(health, Budget, maxLagBytes: null);
        var atProbe = selector.Select(ReplicaRequirement.Any, 0, out _);
        time.Advance(Budget * 0.3); // 0.9 of the budget if replay stopped, past it less one sampling interval
        var later = selector.Select(ReplicaRequirement.Any, 0, out var lagging);

        Assert.That(health.Lag, Is.EqualTo(Budget * 0.6));
        Assert.That(atProbe?.Name, Is.EqualTo("r0"), "within the budget at its probe");
        Assert.That((later?.Name, lagging), Is.EqualTo(((string?)null, true)), "the budget is checked again at selection");
    }

    private ReplicaEndpoint Replica(int index, TimeProvider time)
    {
        var dataSource = NpgsqlDataSource.Create("Host=127.0.0.1;Port=1;Database=none;Username=nobody");
        _dataSources.Add(dataSource);
        return new ReplicaEndpoint(index, $"r{index}", dataSource, time, Interval);
    }
}
