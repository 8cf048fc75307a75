using EfReplicaInterceptor.Topology;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Topology;

/// <summary>
/// What is known of a replica's replay: positions move forward within one run of the server, a restart (another postmaster
/// start time) begins a new incarnation at whatever it replays now, a failure makes the position unknown until a sample sent
/// after it, and a bound of what a read saw exists only from a sample sent after the read.
/// </summary>
public sealed class ReplicaEndpointTests
{
    private const long FirstRun = 1_000;
    private const long SecondRun = 2_000;
    private readonly FakeTimeProvider _time = new();
    private NpgsqlDataSource _dataSource = null!;
    private ReplicaEndpoint _replica = null!;

    [SetUp]
    public void CreateReplica()
    {
        _dataSource = NpgsqlDataSource.Create("Host=127.0.0.1;Port=1;Database=none;Username=nobody");
        _replica = new ReplicaEndpoint(0, "r0", _dataSource, _time, TimeSpan.FromSeconds(1));
    }

    [TearDown]
    public void DisposeDataSource() => _dataSource.Dispose();

    [Test]
    public void Within_one_run_the_known_position_only_moves_forward()
    {
        _replica.ObserveReplay(500, FirstRun, Now());
        _replica.ObserveReplay(400, FirstRun, Now()); // an older answer arriving late

        Assert.That(_replica.KnownReplayLsn, Is.EqualTo(500));
        Assert.That(_replica.Incarnation, Is.Zero);
    }

    [Test]
    public void A_restarted_server_is_a_new_incarnation_known_at_what_it_replays_now()
    {
        _replica.ObserveReplay(500, FirstRun, Now());

        _replica.ObserveReplay(300, SecondRun, Now()); // came back from its last restart point, behind

        Assert.That(_replica.KnownReplayLsn, Is.EqualTo(300), "what the previous run replayed says nothing about this one");
        Assert.That(_replica.Incarnation, Is.EqualTo(1));
    }

    [Test]
    public void After_a_failure_nothing_is_known_until_a_sample_sent_after_it()
    {
        _replica.ObserveReplay(500, FirstRun, Now());
        var sentBefore = Now();
        _time.Advance(TimeSpan.FromMilliseconds(10));

        _replica.ReportFailure();
        Assert.That(_replica.KnownReplayLsn, Is.Zero, "the server may have restarted behind");

        _replica.ObserveReplay(600, FirstRun, sentBefore);
        Assert.That(_replica.KnownReplayLsn, Is.Zero, "a sample sent before the failure may describe a server that is gone");

        _time.Advance(TimeSpan.FromMilliseconds(10));
        _replica.ObserveReplay(550, FirstRun, Now());
        Assert.That(_replica.KnownReplayLsn, Is.EqualTo(550));
    }

    [Test]
    public void A_read_is_bounded_only_by_a_sample_of_the_same_run_sent_after_it()
    {
        _replica.ObserveReplay(500, FirstRun, Now());
        _time.Advance(TimeSpan.FromMilliseconds(10));
        var served = Now();

        Assert.That(_replica.ReplayBound(incarnation: 0, served), Is.Null, "the sample was sent before the read");

        _time.Advance(TimeSpan.FromMilliseconds(10));
        _replica.ObserveReplay(520, FirstRun, Now());
        Assert.That(_replica.ReplayBound(incarnation: 0, served), Is.EqualTo(520));

        _replica.ObserveReplay(100, SecondRun, Now());
        Assert.That(_replica.ReplayBound(incarnation: 0, served), Is.Null, "the run that served the read is gone");
    }

    private long Now() => _time.GetTimestamp();

    [Test]
    public void A_replay_the_primary_reports_raises_the_known_position_of_the_run_that_sent_it_only()
    {
        _replica.ObserveReplay(500, FirstRun, _time.GetTimestamp());
        var sampledAt = _time.GetTimestamp();
        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.That(_replica.ObserveReportedReplay(700, reportedAtTicks: FirstRun, _time.GetTimestamp()), Is.False, "sent when the run started: not after it");
        Assert.That(_replica.ObserveReportedReplay(700, reportedAtTicks: FirstRun + 1, _time.GetTimestamp()), Is.True);
        Assert.That(_replica.ObserveReportedReplay(600, reportedAtTicks: FirstRun + 2, _time.GetTimestamp()), Is.True, "counts, and a lower one does not lower it");
        Assert.That((_replica.KnownReplayLsn, _replica.Incarnation), Is.EqualTo((700UL, 0L)));
        Assert.That(_replica.ReplayBound(0, sampledAt), Is.EqualTo(700), "still sampled at the probe: a bound of reads before it only");
    }

    [Test]
    public void A_replay_the_primary_reports_does_not_count_from_a_capture_sent_before_the_replica_s_last_failure()
    {
        _replica.ObserveReplay(500, FirstRun, _time.GetTimestamp());
        var captureSentAt = _time.GetTimestamp();
        _time.Advance(TimeSpan.FromMilliseconds(1));
        _replica.ReportFailure();
        _time.Advance(TimeSpan.FromMilliseconds(1));
        _replica.ObserveReplay(500, FirstRun, _time.GetTimestamp()); // the probe after the failure: the same run answers

        Assert.That(_replica.ObserveReportedReplay(700, reportedAtTicks: FirstRun + 1, captureSentAt), Is.False);
        Assert.That(_replica.KnownReplayLsn, Is.EqualTo(500UL));
        Assert.That(_replica.ObserveReportedReplay(700, reportedAtTicks: FirstRun + 1, _time.GetTimestamp()), Is.True);
        Assert.That(_replica.KnownReplayLsn, Is.EqualTo(700UL));
    }
}
