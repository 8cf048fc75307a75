using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Topology;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Consistency;

/// <summary>
/// A scope's read history: reads on its own replica need no bound while they stay there; anything else (the primary,
/// another replica) waits for a primary position captured after it; a capture that started before a later command does not
/// cover it; the floor only rises.
/// </summary>
public sealed class ReadHistoryTests
{
    private readonly FakeTimeProvider _time = new();
    private NpgsqlDataSource _dataSource = null!;
    private ReplicaEndpoint _own = null!;
    private ReplicaEndpoint _other = null!;

    [SetUp]
    public void CreateReplicas()
    {
        _dataSource = NpgsqlDataSource.Create("Host=127.0.0.1;Port=1;Database=none;Username=nobody");
        _own = new ReplicaEndpoint(0, "own", _dataSource, _time, TimeSpan.FromSeconds(1));
        _other = new ReplicaEndpoint(1, "other", _dataSource, _time, TimeSpan.FromSeconds(1));
    }

    [TearDown]
    public void DisposeDataSource() => _dataSource.Dispose();

    [Test]
    public void Reads_on_the_scope_s_own_replica_need_no_bound()
    {
        var history = new ReadHistory();
        history.Stick(_own, _own.Incarnation);

        history.Served(_own, _own.Incarnation, now: 10);

        Assert.That(history.Unbounded, Is.False);
        Assert.That(history.LastServedAt, Is.EqualTo(10));
        Assert.That(history.HasPast, Is.True);
    }

    [Test]
    public void A_read_elsewhere_or_on_another_run_of_the_same_replica_is_unbounded()
    {
        var elsewhere = new ReadHistory();
        elsewhere.Stick(_own, _own.Incarnation);
        elsewhere.Served(_other, _other.Incarnation, now: 10);

        var restarted = new ReadHistory();
        restarted.Stick(_own, _own.Incarnation);
        restarted.Served(_own, _own.Incarnation + 1, now: 10);

        var primary = new ReadHistory();
        primary.StartedOnPrimary();

        Assert.That(new[] { elsewhere.Unbounded, restarted.Unbounded, primary.Unbounded }, Is.All.True);
    }

    [Test]
    public void A_primary_capture_bounds_what_finished_before_it_and_not_what_came_after()
    {
        var history = new ReadHistory();
        history.StartedOnPrimary();
        var generation = history.UnboundedGeneration;
        history.StartedOnPrimary(); // finishes while the capture runs

        history.BoundedByPrimary(lsn: 900, generation, sentAt: 5);

        Assert.That(history.Floor, Is.EqualTo(900));
        Assert.That(history.Unbounded, Is.True, "the later command still needs its own bound");

        history.BoundedByPrimary(lsn: 950, history.UnboundedGeneration, sentAt: 6);
        Assert.That(history.Unbounded, Is.False);
    }

    [Test]
    public void A_capture_bounds_the_own_replica_s_reads_only_when_it_was_sent_after_them()
    {
        var history = new ReadHistory();
        history.Stick(_own, _own.Incarnation);
        history.Served(_own, _own.Incarnation, now: 20);

        history.BoundedByPrimary(lsn: 900, history.UnboundedGeneration, sentAt: 10);
        Assert.That(history.LastServedAt, Is.EqualTo(20), "the read finished after the capture was sent");

        history.BoundedByPrimary(lsn: 950, history.UnboundedGeneration, sentAt: 30);
        Assert.That(history.LastServedAt, Is.Zero);
    }

    [Test]
    public void A_primary_sample_bounds_the_reads_that_finished_before_it_was_sent_and_never_a_command_whose_end_is_unknown()
    {
        var history = new ReadHistory();
        history.Stick(_own, _own.Incarnation);
        history.Served(_own, _own.Incarnation, now: 5);
        history.Served(_other, _other.Incarnation, now: 10);

        Assert.That(history.TryBoundBy(lsn: 900, sentAt: 9), Is.False, "sent before the read elsewhere finished");
        Assert.That((history.Unbounded, history.Floor), Is.EqualTo((true, 0UL)));

        Assert.That(history.TryBoundBy(lsn: 950, sentAt: 10), Is.True);
        Assert.That((history.Unbounded, history.Floor, history.LastServedAt), Is.EqualTo((false, 950UL, 0L)), "the own replica's earlier reads are under the floor too");

        history.StartedOnPrimary(); // decided now, runs later: when it ends is not known
        Assert.That(history.TryBoundBy(lsn: 990, sentAt: long.MaxValue - 1), Is.False, "only a capture taken after it bounds it");
        Assert.That(history.Floor, Is.EqualTo(950UL));
    }

    [Test]
    public void The_floor_only_rises_and_a_reset_forgets_everything()
    {
        var history = new ReadHistory();
        history.Raise(500);
        history.Raise(400);
        Assert.That(history.Floor, Is.EqualTo(500));

        history.Stick(_own, _own.Incarnation);
        history.StartedOnPrimary();
        history.Reset();

        Assert.That((history.HasPast, history.Floor, history.Sticky.Replica, history.HasRead), Is.EqualTo((false, 0UL, (ReplicaEndpoint?)null, false)));
    }
}
