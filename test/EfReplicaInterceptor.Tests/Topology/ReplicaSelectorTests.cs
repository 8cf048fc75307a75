using EfReplicaInterceptor.Topology;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Topology;

/// <summary>
/// The one selection loop: the requirement as predicate, the balancing policy for every kind of selection, weights honoured
/// everywhere, and the reason when nothing qualifies. No server: the data sources are never opened.
/// </summary>
public sealed class ReplicaSelectorTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(10);

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

    private ReplicaEndpoint[] Replicas(FakeTimeProvider time, int count)
    {
        var replicas = new ReplicaEndpoint[count];
        for (var i = 0; i < count; i++)
        {
            var dataSource = NpgsqlDataSource.Create($"Host=127.0.0.1;Port=1;Database=none;Username=nobody");
            _dataSources.Add(dataSource);
            replicas[i] = new ReplicaEndpoint(i, $"r{i}", dataSource, time, Interval);
        }

        return replicas;
    }

    /// <summary>What a monitor probe reports: in rotation with <paramref name="lag"/>, replayed up to <paramref name="replay"/>.</summary>
    private static void Healthy(ReplicaEndpoint replica, FakeTimeProvider time, TimeSpan lag, ulong replay = 0)
    {
        var health = new ReplicaHealth { Reachable = true, InRecovery = true, Lag = lag, LagBytes = 0, ReplayLsn = replay, MeasuredAt = time.GetTimestamp() };
        replica.Health = health;
        replica.Availability.ReportProbe(health, Budget, maxLagBytes: null);
        replica.ObserveReplay(replay, startedAtTicks: 1, time.GetTimestamp());
    }

    private static void Lagging(ReplicaEndpoint replica, FakeTimeProvider time)
    {
        var health = new ReplicaHealth { Reachable = true, InRecovery = true, Lag = Budget * 2, LagBytes = 1, MeasuredAt = time.GetTimestamp(), IsLagging = true, Problem = "lagging" };
        replica.Health = health;
        replica.Availability.ReportProbe(health, Budget, maxLagBytes: null);
    }

    private static Dictionary<string, int> Counts(List<string> picks) => picks.GroupBy(name => name).ToDictionary(g => g.Key, g => g.Count());

    private static List<string> Picks(ReplicaSelector selector, ReplicaRequirement requirement, int count)
        => Enumerable.Range(0, count).Select(i => selector.Select(requirement, 0, out _)?.Name ?? "none").ToList();

    [Test]
    public void A_replica_behind_at_its_probe_stops_taking_reads_when_its_budget_runs_out_before_the_next_probe()
    {
        var time = new FakeTimeProvider();
        var replicas = Replicas(time, 1);
        Healthy(replicas[0], time, TimeSpan.FromSeconds(6)); // within the budget of 10 s at the probe
        var selector = new ReplicaSelector(replicas, LoadBalancing.RoundRobin, [1], time, Budget);

        time.Advance(TimeSpan.FromSeconds(3));
        var before = selector.Select(ReplicaRequirement.Any, 0, out var laggingBefore);
        time.Advance(TimeSpan.FromSeconds(2)); // 6 s + 5 s since the probe, if replay stopped: over the budget
        var after = selector.Select(ReplicaRequirement.Any, 0, out var laggingAfter);

        Assert.That((before?.Name, laggingBefore), Is.EqualTo(("r0", false)));
        Assert.That((after?.Name, laggingAfter), Is.EqualTo(((string?)null, true)));
    }

    [Test]
    public void A_replica_caught_up_at_its_probe_keeps_taking_reads_between_probes()
    {
        var time = new FakeTimeProvider();
        var replicas = Replicas(time, 1);
        Healthy(replicas[0], time, TimeSpan.Zero);
        var selector = new ReplicaSelector(replicas, LoadBalancing.RoundRobin, [1], time, Budget);

        time.Advance(Budget * 2);

        Assert.That(selector.Select(ReplicaRequirement.Any, 0, out _)?.Name, Is.EqualTo("r0"));
    }

    [TestCase(0.0, TestName = "A calm replica whose probe is late stops taking reads when the budget runs out (caught up at its probe)")]
    [TestCase(2.0, TestName = "A calm replica whose probe is late stops taking reads when the budget runs out (2 s behind at its probe)")]
    public void A_calm_replica_whose_probe_is_late_stops_taking_reads_when_the_budget_runs_out(double lagSeconds)
    {
        // Budget 10 s, sampling every 1 s: 9 s in hand; a calm replica (at most 5 s behind) is trusted for two intervals.
        var time = new FakeTimeProvider();
        var replicas = Replicas(time, 1);
        Healthy(replicas[0], time, TimeSpan.FromSeconds(lagSeconds));
        var selector = new ReplicaSelector(replicas, LoadBalancing.RoundRobin, [1], time, Budget, Interval);

        time.Advance(TimeSpan.FromSeconds(6.5 - lagSeconds)); // the probe is overdue, but lag + time since is within 9 s
        var late = selector.Select(ReplicaRequirement.Any, 0, out var laggingLate);
        time.Advance(TimeSpan.FromSeconds(3)); // no probe yet: if replay stopped after the probe, it is now past the budget
        var past = selector.Select(ReplicaRequirement.Any, 0, out var laggingPast);

        Assert.That((late?.Name, laggingLate), Is.EqualTo(("r0", false)));
        Assert.That((past?.Name, laggingPast), Is.EqualTo(((string?)null, true)), "a late probe must not stretch the trust in a calm replica past the budget");
    }

    [Test]
    public void Round_robin_spreads_plain_reads_evenly()
    {
        var time = new FakeTimeProvider();
        var replicas = Replicas(time, 3);
        foreach (var replica in replicas)
        {
            Healthy(replica, time, TimeSpan.Zero);
        }

        var selector = new ReplicaSelector(replicas, LoadBalancing.RoundRobin, [1, 1, 1], time);

        Assert.That(Picks(selector, ReplicaRequirement.Any, 300).GroupBy(name => name).ToDictionary(g => g.Key, g => g.Count()),
            Is.EqualTo(new Dictionary<string, int> { ["r0"] = 100, ["r1"] = 100, ["r2"] = 100 }));
    }

    [TestCase(ReplicaRequirementKind.Any)]
    [TestCase(ReplicaRequirementKind.Fresh)]
    [TestCase(ReplicaRequirementKind.CaughtUp)]
    public void Weights_apply_to_every_kind_of_selection(object kind)
    {
        var time = new FakeTimeProvider();
        var replicas = Replicas(time, 2);
        foreach (var replica in replicas)
        {
            Healthy(replica, time, TimeSpan.Zero, replay: 100);
        }

        var selector = new ReplicaSelector(replicas, LoadBalancing.RoundRobin, [3, 1], time);
        var requirement = new ReplicaRequirement((ReplicaRequirementKind)kind, MaxLag: Budget, Lsn: 100);

        var picks = Picks(selector, requirement, 400);

        Assert.That(picks.Count(name => name == "r0"), Is.EqualTo(300));
        Assert.That(picks.Count(name => name == "r1"), Is.EqualTo(100));
    }

    /// <summary>Issue 20: the share of a member out of rotation went to the next in list order (393 vs 758 reads).</summary>
    [TestCase(0, TestName = "Two equal replicas share evenly with the first of three out")]
    [TestCase(1, TestName = "Two equal replicas share evenly with the middle of three out")]
    [TestCase(2, TestName = "Two equal replicas share evenly with the last of three out")]
    public void Two_equal_replicas_share_evenly_with_a_third_out(int outOfRotation)
    {
        var time = new FakeTimeProvider();
        var replicas = Replicas(time, 3);
        foreach (var replica in replicas)
        {
            Healthy(replica, time, TimeSpan.Zero);
        }

        Lagging(replicas[outOfRotation], time);
        var selector = new ReplicaSelector(replicas, LoadBalancing.RoundRobin, [1, 1, 1], time);

        var counts = Counts(Picks(selector, ReplicaRequirement.Any, 3000));

        Assert.That(counts.ContainsKey($"r{outOfRotation}"), Is.False);
        Assert.That(counts.Values.Sum(), Is.EqualTo(3000));
        Assert.That(counts.Values, Has.All.InRange(1350, 1650), "within 10 % of each other's share: " + string.Join(", ", counts));
    }

    [Test]
    public void The_share_of_a_replica_out_of_rotation_is_spread_by_weight()
    {
        var time = new FakeTimeProvider();
        var replicas = Replicas(time, 3);
        foreach (var replica in replicas)
        {
            Healthy(replica, time, TimeSpan.Zero);
        }

        Lagging(replicas[1], time);
        var selector = new ReplicaSelector(replicas, LoadBalancing.RoundRobin, [1, 3, 2], time);

        var counts = Counts(Picks(selector, ReplicaRequirement.Any, 3000));

        Assert.That(counts["r0"], Is.InRange(950, 1050), "weight 1 of the remaining 3");
        Assert.That(counts["r2"], Is.InRange(1950, 2050), "weight 2 of the remaining 3");
    }

    [Test]
    public void A_paused_replica_s_share_is_spread_too()
    {
        var time = new FakeTimeProvider();
        var replicas = Replicas(time, 3);
        foreach (var replica in replicas)
        {
            Healthy(replica, time, TimeSpan.Zero);
        }

        replicas[0].ReportFailure(); // paused for one interval; the clock does not move
        var selector = new ReplicaSelector(replicas, LoadBalancing.RoundRobin, [1, 1, 1], time);

        var counts = Counts(Picks(selector, ReplicaRequirement.Any, 3000));

        Assert.That(counts.Keys, Is.EquivalentTo(new[] { "r1", "r2" }));
        Assert.That(counts.Values, Has.All.InRange(1350, 1650));
    }

    [Test]
    public void Least_lag_spreads_ties_evenly_with_a_third_out()
    {
        var time = new FakeTimeProvider();
        var replicas = Replicas(time, 3);
        foreach (var replica in replicas)
        {
            Healthy(replica, time, TimeSpan.Zero);
        }

        Lagging(replicas[0], time);
        var selector = new ReplicaSelector(replicas, LoadBalancing.LeastLag, [1, 1, 1], time);

        var counts = Counts(Picks(selector, ReplicaRequirement.Any, 3000));

        Assert.That(counts.Keys, Is.EquivalentTo(new[] { "r1", "r2" }));
        Assert.That(counts.Values, Has.All.InRange(1350, 1650));
    }

    [Test]
    public void Least_lag_prefers_the_freshest_replica_for_every_kind_of_selection()
    {
        var time = new FakeTimeProvider();
        var replicas = Replicas(time, 3);
        Healthy(replicas[0], time, TimeSpan.FromMilliseconds(300), replay: 100);
        Healthy(replicas[1], time, TimeSpan.Zero, replay: 100);
        Healthy(replicas[2], time, TimeSpan.FromMilliseconds(100), replay: 100);
        var selector = new ReplicaSelector(replicas, LoadBalancing.LeastLag, [1, 1, 1], time);

        Assert.That(Picks(selector, ReplicaRequirement.Any, 10), Is.All.EqualTo("r1"));
        Assert.That(Picks(selector, ReplicaRequirement.FreshWithin(Budget), 10), Is.All.EqualTo("r1"));
        Assert.That(Picks(selector, ReplicaRequirement.CaughtUpTo(100), 10), Is.All.EqualTo("r1"));
    }

    [Test]
    public void Least_lag_rotates_among_equally_fresh_replicas()
    {
        var time = new FakeTimeProvider();
        var replicas = Replicas(time, 2);
        Healthy(replicas[0], time, TimeSpan.Zero);
        Healthy(replicas[1], time, TimeSpan.Zero);
        var selector = new ReplicaSelector(replicas, LoadBalancing.LeastLag, [1, 1], time);

        Assert.That(Picks(selector, ReplicaRequirement.Any, 100).Distinct().Order(), Is.EqualTo(new[] { "r0", "r1" }));
    }

    [Test]
    public void A_caught_up_read_takes_only_a_replica_known_to_have_replayed_the_position()
    {
        var time = new FakeTimeProvider();
        var replicas = Replicas(time, 2);
        Healthy(replicas[0], time, TimeSpan.Zero, replay: 50);
        Healthy(replicas[1], time, TimeSpan.Zero, replay: 150);
        var selector = new ReplicaSelector(replicas, LoadBalancing.RoundRobin, [1, 1], time);

        Assert.That(Picks(selector, ReplicaRequirement.CaughtUpTo(100), 10), Is.All.EqualTo("r1"));
        Assert.That(Picks(selector, ReplicaRequirement.CaughtUpTo(200), 1), Is.EqualTo(new[] { "none" }));
    }

    [Test]
    public void A_fresh_read_skips_replicas_over_its_budget_and_says_they_lag_when_none_qualifies()
    {
        var time = new FakeTimeProvider();
        var replicas = Replicas(time, 2);
        Healthy(replicas[0], time, TimeSpan.FromSeconds(3));
        Healthy(replicas[1], time, TimeSpan.Zero);
        var selector = new ReplicaSelector(replicas, LoadBalancing.RoundRobin, [1, 1], time);

        Assert.That(Picks(selector, ReplicaRequirement.FreshWithin(TimeSpan.FromSeconds(1)), 10), Is.All.EqualTo("r1"));
        Assert.That(selector.Select(ReplicaRequirement.FreshWithin(TimeSpan.FromMilliseconds(1)), 0b10, out var lagging), Is.Null);
        Assert.That(lagging, Is.True);
    }

    [Test]
    public void Excluded_replicas_are_skipped_and_a_plain_read_reports_lagging_only_for_a_replica_out_for_its_lag()
    {
        var time = new FakeTimeProvider();
        var replicas = Replicas(time, 2);
        Healthy(replicas[0], time, TimeSpan.Zero);
        Lagging(replicas[1], time);
        var selector = new ReplicaSelector(replicas, LoadBalancing.RoundRobin, [1, 1], time);

        Assert.That(Picks(selector, ReplicaRequirement.Any, 10), Is.All.EqualTo("r0"));
        Assert.That(selector.Select(ReplicaRequirement.Any, 0b01, out var lagging), Is.Null);
        Assert.That(lagging, Is.True, "the only other replica is out for its lag");
    }

    [Test]
    public void A_paused_replica_gets_one_half_open_probe_from_a_plain_read_and_none_from_a_constrained_one()
    {
        var time = new FakeTimeProvider();
        var replicas = Replicas(time, 1);
        Healthy(replicas[0], time, TimeSpan.Zero, replay: 100);
        var selector = new ReplicaSelector(replicas, LoadBalancing.RoundRobin, [1], time);
        replicas[0].ReportFailure();

        Assert.That(Picks(selector, ReplicaRequirement.Any, 1), Is.EqualTo(new[] { "none" }), "paused");
        time.Advance(Interval);
        Assert.That(Picks(selector, ReplicaRequirement.CaughtUpTo(100), 1), Is.EqualTo(new[] { "none" }), "a constrained read never probes");
        Assert.That(Picks(selector, ReplicaRequirement.Any, 2), Is.EqualTo(new[] { "r0", "none" }), "one half-open probe, then nothing until it reports");
    }

    [Test]
    public void No_replica_means_no_selection()
    {
        var selector = new ReplicaSelector([], LoadBalancing.RoundRobin, [], new FakeTimeProvider());

        Assert.That(selector.HasReplicas, Is.False);
        Assert.That(selector.Select(ReplicaRequirement.Any, 0, out var lagging), Is.Null);
        Assert.That(lagging, Is.False);
    }

    [Test]
    public void The_weighted_schedule_interleaves_as_smooth_round_robin_does()
        => Assert.That(ReplicaSelector.BuildSchedule([3, 1]), Is.EqualTo(new[] { 0, 0, 1, 0 }));
}
