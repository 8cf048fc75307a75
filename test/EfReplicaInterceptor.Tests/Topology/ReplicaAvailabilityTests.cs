using EfReplicaInterceptor.Topology;
using Microsoft.Extensions.Time.Testing;

namespace EfReplicaInterceptor.Tests.Topology;

/// <summary>
/// Every transition of <see cref="ReplicaAvailability"/>, one test each, on a fake clock. This part: the monitor's verdict
/// and its hysteresis; the other part (<c>ReplicaAvailabilityTests.Breaker.cs</c>): failed reads, half-open and the backoff.
/// </summary>
public sealed partial class ReplicaAvailabilityTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxLag = TimeSpan.FromSeconds(10);

    private FakeTimeProvider _time = null!;
    private ReplicaAvailability _replica = null!;

    [SetUp]
    public void SetUp()
    {
        _time = new FakeTimeProvider();
        _replica = new ReplicaAvailability(_time, Interval);
    }

    /// <summary>The two ways a probe finds a replica unusable (answering as the primary is a role, not a fault: see the role tests).</summary>
    public static readonly string[] BadProbes = ["lagging", "unreachable"];

    [Test]
    public void An_unprobed_replica_is_out_of_rotation_and_due_for_a_probe()
    {
        Assert.Multiple(() =>
        {
            Assert.That(_replica.IsInRotation, Is.False);
            Assert.That(_replica.TryAcquire(), Is.False);
            Assert.That(_replica.IsAdmittedByMonitor, Is.False);
        });
    }

    [Test]
    public void Unknown_to_admitted_on_the_first_healthy_probe()
    {
        var change = Probe(Healthy(TimeSpan.FromSeconds(9))); // within budget, not calm: no hysteresis the first time

        Assert.That(change, Is.EqualTo(AvailabilityChange.Admitted));
        Assert.That(_replica.IsInRotation, Is.True);
        Assert.That(_replica.TryAcquire(), Is.True);
    }

    [TestCaseSource(nameof(BadProbes))]
    public void Unknown_to_kept_out_on_a_bad_probe_announced_once(string bad)
    {
        Assert.That(Probe(Bad(bad)), Is.EqualTo(AvailabilityChange.KeptOut));
        _time.Advance(Interval * 8);
        Assert.That(Probe(Bad(bad)), Is.EqualTo(AvailabilityChange.None), "announced once");
        Assert.That(_replica.IsInRotation, Is.False);
    }

    [Test]
    public void Kept_out_to_in_rotation_on_its_first_healthy_probe_announced_as_rejoining()
    {
        Probe(Lagging());

        Assert.That(Probe(Healthy(TimeSpan.FromSeconds(9))), Is.EqualTo(AvailabilityChange.Rejoined), "never in rotation: no hysteresis");
        Assert.That(_replica.IsInRotation, Is.True);
    }

    [TestCaseSource(nameof(BadProbes))]
    public void Admitted_to_left_on_a_bad_probe(string bad)
    {
        Probe(Calm());

        Assert.That(Probe(Bad(bad)), Is.EqualTo(AvailabilityChange.Left));
        Assert.That(_replica.IsInRotation, Is.False);
        Assert.That(_replica.TryAcquire(), Is.False);
    }

    [Test]
    public void Left_does_not_come_back_on_one_calm_probe_but_does_on_two_in_a_row()
    {
        Probe(Calm());
        Probe(Lagging());

        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.None));
        Assert.That(_replica.IsInRotation, Is.False, "one calm probe is not enough");
        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.Rejoined));
        Assert.That(_replica.IsInRotation, Is.True);
    }

    [Test]
    public void A_healthy_probe_that_is_not_calm_resets_the_streak()
    {
        Probe(Calm());
        Probe(Lagging());

        Probe(Calm());
        Assert.That(Probe(Healthy(TimeSpan.FromSeconds(6))), Is.EqualTo(AvailabilityChange.None), "within budget but over half of it");
        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.None), "the streak started again");
        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.Rejoined));
    }

    [TestCaseSource(nameof(BadProbes))]
    public void A_bad_probe_resets_the_streak(string bad)
    {
        Probe(Calm());
        Probe(Lagging());

        Probe(Calm());
        Probe(Bad(bad));
        _time.Advance(Interval * 8); // past any probe backoff
        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.None));
        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.Rejoined));
    }

    [Test]
    public void A_node_that_answers_as_the_primary_is_announced_once_and_never_as_kept_out()
    {
        Assert.That(Probe(AnswersAsPrimary()), Is.EqualTo(AvailabilityChange.NowPrimary));
        Assert.That(Probe(AnswersAsPrimary()), Is.EqualTo(AvailabilityChange.None), "announced once");
        Assert.Multiple(() =>
        {
            Assert.That(_replica.IsInRotation, Is.False, "the primary takes no standby reads");
            Assert.That(_replica.AnswersAsPrimary, Is.True);
        });
    }

    [Test]
    public void A_replica_in_rotation_that_is_promoted_is_announced_as_the_primary_not_as_leaving()
    {
        Probe(Calm());

        Assert.That(Probe(AnswersAsPrimary()), Is.EqualTo(AvailabilityChange.NowPrimary));
        Assert.That(_replica.IsInRotation, Is.False);
        Assert.That(_replica.TryAcquire(), Is.False);
    }

    [Test]
    public void The_primary_that_becomes_a_standby_joins_on_its_first_healthy_probe_as_now_a_standby()
    {
        Probe(Calm());
        Probe(AnswersAsPrimary());

        Assert.That(Probe(Healthy(TimeSpan.FromSeconds(9))), Is.EqualTo(AvailabilityChange.NowStandby), "a new role: no hysteresis");
        Assert.That(_replica.IsInRotation, Is.True);
        Assert.That(_replica.AnswersAsPrimary, Is.False);
        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.None));
    }

    [Test]
    public void The_primary_stopped_then_rebuilt_as_a_catching_up_standby_announces_only_its_joining()
    {
        Probe(AnswersAsPrimary());

        var changes = new List<AvailabilityChange>();
        for (var probe = 0; probe < 3; probe++)
        {
            changes.Add(Probe(Unreachable()));
            _time.Advance(Interval);
        }

        changes.Add(Probe(Lagging())); // a standby again, still catching up
        Assert.That(changes, Is.All.EqualTo(AvailabilityChange.None), "no 'left', no 'kept out': it was never in rotation");
        Assert.That(_replica.AnswersAsPrimary, Is.False);
        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.NowStandby));
    }

    [Test]
    public void Reads_on_a_node_that_answers_as_the_primary_announce_nothing()
    {
        Probe(AnswersAsPrimary());

        Assert.That(_replica.ReportFailure(), Is.EqualTo(AvailabilityChange.None));
        Assert.That(_replica.ReportSuccess(), Is.EqualTo(AvailabilityChange.None));
        Assert.That(_replica.IsInRotation, Is.False);
    }

    [TestCase(0.0, null, null, true)]
    [TestCase(5.0, null, null, true, Description = "exactly half the budget")]
    [TestCase(5.001, null, null, false)]
    [TestCase(1.0, 500L, 1000L, true)]
    [TestCase(1.0, 501L, 1000L, false, Description = "calm in time, not in bytes")]
    [TestCase(1.0, 5000L, null, true, Description = "bytes ignored without a byte budget")]
    public void Calm_is_within_half_the_budget(double lagSeconds, long? lagBytes, long? maxBytes, bool calm)
    {
        var health = new ReplicaHealth { Reachable = true, InRecovery = true, Lag = TimeSpan.FromSeconds(lagSeconds), LagBytes = lagBytes };

        Assert.That(ReplicaAvailability.IsCalm(health, MaxLag, maxBytes), Is.EqualTo(calm));
    }

    [Test]
    public void Calm_needs_a_known_lag_and_no_problem()
    {
        Assert.That(ReplicaAvailability.IsCalm(new ReplicaHealth { Reachable = true, InRecovery = true }, MaxLag, null), Is.False);
        Assert.That(ReplicaAvailability.IsCalm(Lagging(), MaxLag, null), Is.False);
    }

    private AvailabilityChange Probe(ReplicaHealth health) => _replica.ReportProbe(health, MaxLag, maxLagBytes: null);

    private static ReplicaHealth Healthy(TimeSpan lag) => new() { Reachable = true, InRecovery = true, Lag = lag, LagBytes = 0 };

    private static ReplicaHealth Calm() => Healthy(TimeSpan.FromSeconds(1));

    private static ReplicaHealth Lagging() => new()
    {
        Reachable = true,
        InRecovery = true,
        Lag = TimeSpan.FromSeconds(20),
        LagBytes = 4096,
        IsLagging = true,
        Problem = "lag 20 s is over the budget of 10 s",
    };

    private static ReplicaHealth Bad(string kind) => kind switch
    {
        "lagging" => Lagging(),
        "unreachable" => Unreachable(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    private static ReplicaHealth AnswersAsPrimary() => new() { Reachable = true, InRecovery = false, Problem = "not a standby" };

    private static ReplicaHealth Unreachable() => new() { Reachable = false, Problem = "unreachable: the probe timed out" };
}
