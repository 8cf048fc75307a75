using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Tests.Topology;

/// <summary>Failed reads, the half-open trial, and the one backoff for pauses and probes.</summary>
public sealed partial class ReplicaAvailabilityTests
{
    [Test]
    public void In_rotation_to_paused_on_a_failed_read()
    {
        Probe(Calm());

        Assert.That(_replica.ReportFailure(), Is.EqualTo(AvailabilityChange.Left));
        Assert.Multiple(() =>
        {
            Assert.That(_replica.IsInRotation, Is.False);
            Assert.That(_replica.IsPaused, Is.True);
            Assert.That(_replica.IsAdmittedByMonitor, Is.True, "the monitor's verdict is unchanged");
            Assert.That(_replica.TryAcquire(), Is.False);
        });
        Assert.That(_replica.ReportFailure(), Is.EqualTo(AvailabilityChange.None), "already out: announced once");
    }

    [Test]
    public void Concurrent_failed_reads_take_it_out_once()
    {
        Probe(Calm());

        var changes = RunConcurrently(8, _replica.ReportFailure);

        Assert.That(changes.Count(c => c == AvailabilityChange.Left), Is.EqualTo(1));
    }

    [Test]
    public void Paused_to_half_open_once_the_backoff_is_over_for_exactly_one_caller()
    {
        Probe(Calm());
        _replica.ReportFailure();

        _time.Advance(Interval - TimeSpan.FromTicks(1));
        Assert.That(_replica.TryAcquire(), Is.False, "still paused");
        _time.Advance(TimeSpan.FromTicks(1));

        var winners = RunConcurrently(8, _replica.TryAcquire);

        Assert.That(winners.Count(won => won), Is.EqualTo(1), "one caller tries the replica");
        Assert.That(_replica.TryAcquire(), Is.False, "the others wait for its outcome");
        Assert.That(_replica.IsInRotation, Is.False);
    }

    [Test]
    public void Half_open_to_in_rotation_on_a_successful_read()
    {
        Probe(Calm());
        _replica.ReportFailure();
        _time.Advance(Interval);
        Assert.That(_replica.TryAcquire(), Is.True);

        Assert.That(_replica.ReportSuccess(), Is.EqualTo(AvailabilityChange.Rejoined));
        Assert.That(_replica.IsInRotation, Is.True);
        Assert.That(_replica.ConsecutiveFailures, Is.Zero);
        Assert.That(_replica.ReportSuccess(), Is.EqualTo(AvailabilityChange.None), "steady state");
    }

    [Test]
    public void Half_open_to_paused_longer_on_a_failed_read_doubling_up_to_eight_intervals()
    {
        Probe(Calm());
        var pauses = new List<double>();
        _replica.ReportFailure();
        for (var failure = 1; failure <= 6; failure++)
        {
            pauses.Add(PauseLength().TotalSeconds); // ends with this caller holding the half-open trial
            Assert.That(_replica.ReportFailure(), Is.EqualTo(AvailabilityChange.None), "the trial failed; already announced");
        }

        Assert.That(pauses, Is.EqualTo(new[] { 1.0, 2, 4, 8, 8, 8 }));
    }

    [Test]
    public void A_half_open_trial_that_never_reports_lets_another_caller_try_one_interval_later()
    {
        Probe(Calm());
        _replica.ReportFailure();
        _time.Advance(Interval);
        Assert.That(_replica.TryAcquire(), Is.True);

        _time.Advance(Interval - TimeSpan.FromTicks(1));
        Assert.That(_replica.TryAcquire(), Is.False);
        _time.Advance(TimeSpan.FromTicks(1));
        Assert.That(_replica.TryAcquire(), Is.True);
    }

    [TestCase(false, TestName = "A_healthy_probe_while_paused_re_admits")]
    [TestCase(true, TestName = "A_healthy_probe_while_half_open_re_admits")]
    public void A_healthy_probe_while_paused_re_admits(bool halfOpen)
    {
        Probe(Calm());
        _replica.ReportFailure();
        _replica.ReportFailure();
        if (halfOpen)
        {
            _time.Advance(Interval * 2);
            Assert.That(_replica.TryAcquire(), Is.True);
        }

        Assert.That(Probe(Healthy(TimeSpan.FromSeconds(9))), Is.EqualTo(AvailabilityChange.Rejoined), "no hysteresis: the monitor never saw it bad");
        Assert.That(_replica.IsInRotation, Is.True);
        Assert.That(_replica.ConsecutiveFailures, Is.Zero);
    }

    [Test]
    public void A_bad_probe_while_paused_takes_it_out_without_announcing_again()
    {
        Probe(Calm());
        _replica.ReportFailure();

        Assert.That(Probe(Lagging()), Is.EqualTo(AvailabilityChange.None), "left when the read failed");
        Assert.That(_replica.IsAdmittedByMonitor, Is.False);
        _time.Advance(Interval * 8);
        Assert.That(_replica.TryAcquire(), Is.False, "no half-open trial while the monitor has it out");
    }

    [Test]
    public void Reads_on_a_replica_the_monitor_has_out_announce_nothing()
    {
        Probe(Lagging());

        Assert.That(_replica.ReportFailure(), Is.EqualTo(AvailabilityChange.None));
        Assert.That(_replica.ReportSuccess(), Is.EqualTo(AvailabilityChange.None));
        Assert.That(_replica.IsInRotation, Is.False);
    }

    [TestCase(1, 1)]
    [TestCase(2, 2)]
    [TestCase(3, 4)]
    [TestCase(4, 8)]
    [TestCase(5, 8)]
    [TestCase(30, 8)]
    public void The_backoff_doubles_from_one_interval_and_stops_at_eight(int failures, int intervals)
        => Assert.That(_replica.Backoff(failures), Is.EqualTo(Interval * intervals));

    [Test]
    public void An_unreachable_replica_that_is_not_flapping_is_probed_every_round()
    {
        Probe(Calm());
        for (var probe = 1; probe <= 12; probe++)
        {
            Probe(Unreachable());
            Assert.That(_replica.ConsecutiveFailures, Is.EqualTo(probe));
            _time.Advance(Interval);
        }

        Assert.That(_replica.IsFlapping, Is.False);
    }

    /// <summary>
    /// A flapping replica (down again within probation of its return) is probed every round too, and back within three turns
    /// of answering (two calm probes), however long it was down: its probes used to back off up to 8 intervals, so a
    /// standby restarted twice within its probation waited that long after it answered (the history matrix's restart cells).
    /// </summary>
    [TestCase(1)]
    [TestCase(6)]
    [TestCase(40)]
    public void A_flapping_replica_is_probed_every_round_and_back_within_three_turns_of_answering(int turnsDown)
    {
        MakeFlapping();
        for (var turn = 0; turn < turnsDown; turn++)
        {
            _replica.StartProbe();
            Probe(Unreachable());
            _time.Advance(Interval);
        }

        Assert.That(_replica.IsFlapping, Is.True);
        var turns = 0;
        while (!_replica.IsInRotation)
        {
            turns++;
            _replica.StartProbe();
            Probe(Calm());
            _time.Advance(Interval);
            Assert.That(turns, Is.LessThanOrEqualTo(2), "two calm probes, one a turn");
        }
    }

    [Test]
    public void A_replica_back_from_an_outage_is_in_rotation_on_its_first_calm_probe()
    {
        Probe(Calm());
        for (var probe = 0; probe < 30; probe++)
        {
            Probe(Unreachable());
            _time.Advance(Interval);
        }

        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.Rejoined));
        Assert.That(_replica.IsInRotation, Is.True);
    }

    [Test]
    public void A_replica_back_from_an_outage_may_catch_up_first_and_still_needs_one_calm_probe()
    {
        Probe(Calm());
        Probe(Unreachable());

        Assert.That(Probe(Lagging()), Is.EqualTo(AvailabilityChange.None));
        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.Rejoined));
    }

    /// <summary>
    /// Issue 20: a restarted standby waited for the probe backoff (up to 8 intervals) and two calm probes. Driven as the
    /// monitor's loop drives it (a turn every interval, probing when due), counted in turns from the one at which the
    /// server answers again: at most two, however long it was down.
    /// </summary>
    [TestCase(3)]
    [TestCase(10)]
    [TestCase(60)]
    public void A_restarted_standby_is_back_within_two_probe_turns_of_answering(int turnsDown)
    {
        Probe(Calm());
        var turns = 0;
        for (var turn = 0; turn < turnsDown; turn++)
        {
            _replica.StartProbe();
            Probe(Unreachable());

            _time.Advance(Interval);
        }

        while (!_replica.IsInRotation)
        {
            turns++;
            _replica.StartProbe();
            Probe(Calm());

            _time.Advance(Interval);
            Assert.That(turns, Is.LessThanOrEqualTo(2), "back within two turns of answering");
        }
    }

    /// <summary>
    /// Issue 20 (Patroni): a standby stopped under load leaves through the read path (a failed read pauses it), and a
    /// restart can come before any monitor probe finds it down: the first probe then finds it catching up (lagging). Left
    /// by a failure, not flapping: one calm probe brings it back, as one that the monitor found unreachable.
    /// </summary>
    [Test]
    public void A_replica_paused_by_a_failed_read_and_found_catching_up_is_back_on_one_calm_probe()
    {
        Probe(Calm());
        _replica.ReportFailure();

        Assert.That(Probe(Lagging()), Is.EqualTo(AvailabilityChange.None), "paused already: announced then");
        Assert.That(_replica.IsAdmittedByMonitor, Is.False);
        Assert.That(Probe(Lagging()), Is.EqualTo(AvailabilityChange.None));
        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.Rejoined), "one calm probe");
        Assert.That(_replica.IsInRotation, Is.True);
    }

    [Test]
    public void A_replica_paused_by_a_failed_read_then_found_unreachable_is_back_on_one_calm_probe()
    {
        Probe(Calm());
        _replica.ReportFailure();
        _replica.ReportFailure();
        Probe(Unreachable());
        Probe(Lagging());

        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.Rejoined));
    }

    /// <summary>The read path's version of the turn-driven test above: failed reads, then a restart found catching up.</summary>
    [TestCase(0)]
    [TestCase(3)]
    [TestCase(30)]
    public void A_standby_that_left_by_failed_reads_is_back_within_two_probe_turns_of_having_replayed(int turnsDown)
    {
        Probe(Calm());
        _replica.ReportFailure();
        _replica.ReportFailure();
        for (var turn = 0; turn < turnsDown; turn++)
        {
            _replica.StartProbe();
            Probe(Unreachable());

            _time.Advance(Interval);
        }

        for (var turn = 0; turn < 3; turn++)
        {
            _replica.StartProbe();
            Probe(Lagging()); // answers, replaying what it missed

            _time.Advance(Interval);
        }

        var turns = 0;
        while (!_replica.IsInRotation)
        {
            turns++;
            _replica.StartProbe();
            Probe(Calm());

            _time.Advance(Interval);
            Assert.That(turns, Is.LessThanOrEqualTo(2), "back within two turns of having replayed");
        }
    }

    [Test]
    public void A_replica_that_fails_a_read_right_after_its_return_and_catches_up_needs_two_calm_probes()
    {
        MakeFlapping();
        _replica.ReportFailure();
        Probe(Lagging());

        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.None), "flapping: the hysteresis applies");
        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.Rejoined));
    }

    [Test]
    public void A_flapping_replica_needs_two_calm_probes_to_return()
    {
        MakeFlapping();
        Probe(Unreachable());

        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.None), "flapping: the hysteresis applies");
        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.Rejoined));
    }

    [Test]
    public void After_its_probation_a_new_outage_is_a_fast_one_again()
    {
        MakeFlapping(); // returned just now
        _time.Advance(Interval * ReplicaAvailability.ProbationIntervals);

        Probe(Unreachable());

        Assert.That(_replica.IsFlapping, Is.False);
        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.Rejoined), "one calm probe");
    }

    [Test]
    public void A_failed_read_soon_after_a_return_counts_as_flapping_too()
    {
        MakeFlapping();

        _replica.ReportFailure();

        Assert.That(_replica.IsFlapping, Is.True);
    }

    [Test]
    public void A_replica_that_answers_starts_counting_failures_again()
    {
        MakeFlapping();
        for (var probe = 0; probe < 3; probe++)
        {
            Probe(Unreachable());
        }

        Probe(Lagging()); // reachable, even if not usable

        Assert.That(_replica.ConsecutiveFailures, Is.Zero);
    }

    [Test]
    public void A_failed_read_asks_for_a_probe_and_taking_it_clears_the_request()
    {
        Probe(Calm());

        _replica.ReportFailure();
        Assert.That(_replica.ProbeRequested, Is.True);

        _replica.StartProbe();
        Assert.That(_replica.ProbeRequested, Is.False);
    }

    [Test]
    public void Failed_reads_and_unreachable_probes_count_toward_one_read_pause_backoff()
    {
        MakeFlapping();
        _replica.ReportFailure();
        Probe(Unreachable());
        Assert.That(_replica.ConsecutiveFailures, Is.EqualTo(2));
        Probe(Calm());
        Probe(Calm()); // back in rotation (flapping: two calm probes)

        _replica.ReportFailure();
        Assert.That(PauseLength(), Is.EqualTo(Interval), "a healthy probe between them starts the count again");
    }

    /// <summary>In rotation, out unreachable, back on one calm probe just now: a failure within probation makes the next outage a flapping one.</summary>
    private void MakeFlapping()
    {
        Probe(Calm());
        Probe(Unreachable());
        Assert.That(Probe(Calm()), Is.EqualTo(AvailabilityChange.Rejoined));
    }

    /// <summary>Advances the clock to the end of the pause (claiming the half-open trial), checking it is not over a tick earlier.</summary>
    private TimeSpan PauseLength() => AdvanceUntil(_replica.TryAcquire);

    /// <summary>Every wait is a whole number of intervals: step one at a time, and check one tick before each step too.</summary>
    private TimeSpan AdvanceUntil(Func<bool> ready)
    {
        for (var waited = Interval; waited <= Interval * 64; waited += Interval)
        {
            _time.Advance(Interval - TimeSpan.FromTicks(1));
            Assert.That(ready(), Is.False, $"ready a tick before {waited}");
            _time.Advance(TimeSpan.FromTicks(1));
            if (ready())
            {
                return waited;
            }
        }

        throw new AssertionException("never ready");
    }

    private static T[] RunConcurrently<T>(int callers, Func<T> action)
    {
        var results = new T[callers];
        using var start = new Barrier(callers);
        var threads = Enumerable.Range(0, callers).Select(i => new Thread(() =>
        {
            start.SignalAndWait();
            results[i] = action();
        })).ToArray();
        foreach (var thread in threads)
        {
            thread.Start();
        }

        foreach (var thread in threads)
        {
            thread.Join();
        }

        return results;
    }
}
