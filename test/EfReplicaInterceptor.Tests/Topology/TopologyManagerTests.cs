using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Topology;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Topology;

/// <summary>
/// The snapshot swap: which endpoints a new topology keeps, builds and retires, the slots they hold, and what a retired one
/// still does (nothing new starts on it; what runs finishes before its data source goes). No server: the data sources point
/// at a closed port and are never opened, and the monitor is not started.
/// </summary>
public sealed class TopologyManagerTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    private FakeTimeProvider _time = null!;
    private ReplicaMembership _membership = null!;
    private ClusterMonitor _monitor = null!;
    private TopologyManager _manager = null!;
    private NpgsqlDataSource _primary = null!;
    private List<ReplicaEndpoint> _built = null!;

    [SetUp]
    public void Build()
    {
        _time = new FakeTimeProvider();
        _built = [];
        _membership = new ReplicaMembership(ReplicaSetSnapshot.Empty);
        _primary = NpgsqlDataSource.Create("Host=127.0.0.1;Port=1;Database=none;Username=nobody");
        var deadlines = new ServerDeadlines(TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(2), _time);
        var primary = new WatchedServer("the primary", _primary, new ServerLiveness(_time), deadlines);
        _monitor = new ClusterMonitor("c", primary, [], new EfReplicaOptions { Primary = "Host=127.0.0.1;Port=1" }, new PrimaryPosition(),
            new SplitBrainDetector(null, (cs, _) => NpgsqlDataSource.Create(cs), deadlines), _time, NullLoggerFactory.Instance);
        _manager = new TopologyManager("c", _membership, _monitor, (member, slot) =>
        {
            var endpoint = new ReplicaEndpoint(slot, member.Name, NpgsqlDataSource.Create(member.ConnectionString), _time, Interval, deadlines);
            _built.Add(endpoint);
            return endpoint;
        }, _time, NullLoggerFactory.Instance);
    }

    [TearDown]
    public async Task Dispose()
    {
        await _monitor.DisposeAsync();
        await _manager.DisposeAsync();
        await _primary.DisposeAsync();
    }

    private static TopologyMember Replica(string name, int port, int weight = 1, bool takesReads = true)
        => new(name, $"Host=127.0.0.1;Port={port};Database=none;Username=nobody", MemberRole.Replica, takesReads, weight);

    /// <summary>A member the source names as the leader and reports running (Patroni's <c>leader</c>/<c>running</c>).</summary>
    private static TopologyMember Leader(string name, int port) => Replica(name, port, takesReads: false) with { Role = MemberRole.Primary, State = "running" };

    private static TopologySnapshot Snapshot(params TopologyMember[] members) => new(members, "test");

    private static void Admit(ReplicaEndpoint replica, FakeTimeProvider time)
    {
        var health = new ReplicaHealth { Reachable = true, InRecovery = true, Lag = TimeSpan.Zero, LagBytes = 0, MeasuredAt = time.GetTimestamp() };
        replica.Health = health;
        replica.Availability.ReportProbe(health, TimeSpan.FromSeconds(5), maxLagBytes: null);
    }

    [Test]
    public void The_first_topology_builds_one_endpoint_per_readable_replica_in_distinct_slots()
    {
        _manager.Apply(Snapshot(Replica("a", 1), Replica("b", 2, weight: 3), Replica("c", 3, takesReads: false),
            new TopologyMember("leader", "Host=127.0.0.1;Port=4", MemberRole.Primary, TakesReads: false)), initial: true);

        var set = _membership.Current;
        Assert.Multiple(() =>
        {
            Assert.That(set.Replicas.Select(static r => r.Name), Is.EqualTo(new[] { "a", "b" }), "a member that takes no reads and the leader get no endpoint");
            Assert.That(set.Replicas.Select(static r => r.Index), Is.EqualTo(new[] { 0, 1 }));
            Assert.That(set.Weights, Is.EqualTo(new[] { 1, 3 }));
            Assert.That(set.Schedule.Count(static position => position == 1), Is.EqualTo(3), "the schedule follows the weights");
            Assert.That(_monitor.Replicas.Select(static r => r.Name), Is.EqualTo(new[] { "a", "b" }), "the monitor watches each one");
            Assert.That(_manager.Leader, Is.EqualTo("leader"));
        });
    }

    [Test]
    public void A_leader_the_source_reports_running_gets_an_endpoint_and_keeps_it_when_it_becomes_a_replica()
    {
        _manager.Apply(Snapshot(Replica("a", 1), Leader("leader", 4)), initial: true);
        var leader = _membership.Current.Replicas.Single(static r => r.Name == "leader");

        _manager.Apply(Snapshot(Leader("a", 1), Replica("leader", 4)));

        Assert.Multiple(() =>
        {
            Assert.That(_membership.Current.Replicas.Select(static r => r.Name), Is.EqualTo(new[] { "a", "leader" }), "both watched, whatever their role");
            Assert.That(_membership.Current.Replicas.Single(static r => r.Name == "leader"), Is.SameAs(leader), "a switchover keeps the endpoint (same name and string)");
            Assert.That(_manager.Leader, Is.EqualTo("a"));
        });
    }

    [Test]
    public async Task A_removed_replica_leaves_the_set_at_once_and_a_kept_one_keeps_its_endpoint_and_state()
    {
        _manager.Apply(Snapshot(Replica("a", 1), Replica("b", 2)), initial: true);
        var (a, b) = (_membership.Current.Replicas[0], _membership.Current.Replicas[1]);
        Admit(a, _time);
        Admit(b, _time);

        _manager.Apply(Snapshot(Replica("b", 2), Replica("c", 3)));

        var set = _membership.Current;
        var c = set.Replicas[1];
        Assert.Multiple(() =>
        {
            Assert.That(set.Replicas.Select(static r => r.Name), Is.EqualTo(new[] { "b", "c" }));
            Assert.That(set.Replicas[0], Is.SameAs(b), "b is kept, with its availability");
            Assert.That(b.IsAdmitted, Is.True);
            Assert.That(a.IsRetired, Is.True);
            Assert.That(a.IsAdmitted, Is.False, "a scope whose replica was a moves as if it had left the rotation");
            Assert.That(a.TryAcquire(), Is.False);
            Assert.That(c.Index, Is.Not.EqualTo(b.Index), "a new replica never shares a slot with a current one");
            Assert.That(c.IsAdmitted, Is.False, "a new replica takes reads only once a probe admits it");
            Assert.That(set.Version, Is.GreaterThan(0));
        });

        await _manager.WhenDrainedAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(_monitor.Replicas.Select(static r => r.Name), Is.EqualTo(new[] { "b", "c" }), "a's loop is gone");
        Assert.Throws<ObjectDisposedException>(() => a.DataSource.CreateConnection().Open(), "a's data source is disposed once drained");
    }

    [Test]
    public async Task A_retired_replica_is_disposed_only_once_its_operations_have_ended()
    {
        _manager.Apply(Snapshot(Replica("a", 1)), initial: true);
        var a = _membership.Current.Replicas[0];
        Assert.That(a.Server.Usage.TryEnter(), Is.True, "a read in flight");

        _manager.Apply(Snapshot());
        var drained = _manager.WhenDrainedAsync();
        await Task.Delay(50);
        Assert.Multiple(() =>
        {
            Assert.That(_membership.Current.Replicas, Is.Empty);
            Assert.That(drained.IsCompleted, Is.False, "the read in flight still runs on the old data source");
            Assert.That(a.Server.Usage.TryEnter(), Is.False, "nothing new starts on it");
        });

        a.Server.Usage.Exit();
        await drained.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Throws<ObjectDisposedException>(() => a.DataSource.CreateConnection().Open());
    }

    [Test]
    public async Task An_operation_that_picked_a_replica_just_before_it_left_fails_over_as_unreachable()
    {
        _manager.Apply(Snapshot(Replica("a", 1)), initial: true);
        var a = _membership.Current.Replicas[0];
        _manager.Apply(Snapshot());

        using (var watch = a.Server.WatchRead(30, CancellationToken.None))
        {
            var failure = Assert.ThrowsAsync<NpgsqlException>(async () => await watch.OpenAsync(a.DataSource, async: true, CancellationToken.None));
            Assert.That(failure!.Message, Does.Contain("no longer one of the cluster's servers"), "refused without trying to connect");
            Assert.That(FailoverErrors.Classify(failure, FailurePhase.Opening, onStandby: true), Is.EqualTo(ServerErrorKind.Unreachable), "the read is retried elsewhere at once");
        }

        await _manager.WhenDrainedAsync().WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Test]
    public void A_re_pointed_replica_is_a_new_endpoint_and_a_changed_weight_keeps_the_endpoint()
    {
        _manager.Apply(Snapshot(Replica("a", 1), Replica("b", 2)), initial: true);
        var (a, b) = (_membership.Current.Replicas[0], _membership.Current.Replicas[1]);
        var version = _membership.Current.Version;

        _manager.Apply(Snapshot(Replica("a", 1, weight: 5), Replica("b", 9)));

        var set = _membership.Current;
        Assert.Multiple(() =>
        {
            Assert.That(set.Replicas[0], Is.SameAs(a), "only its weight changed");
            Assert.That(set.Weights, Is.EqualTo(new[] { 5, 1 }));
            Assert.That(set.Replicas[1], Is.Not.SameAs(b), "b points at another server now");
            Assert.That(set.Replicas[1].Name, Is.EqualTo("b"));
            Assert.That(b.IsRetired, Is.True);
            Assert.That(set.Version, Is.EqualTo(version + 1));
        });
    }

    [Test]
    public void The_same_topology_again_changes_nothing()
    {
        _manager.Apply(Snapshot(Replica("a", 1), Replica("b", 2)), initial: true);
        var before = _membership.Current;

        _manager.Apply(Snapshot(Replica("a", 1), Replica("b", 2)));

        Assert.That(_membership.Current, Is.SameAs(before), "a reload that changed nothing swaps nothing");
        Assert.That(_built, Has.Count.EqualTo(2));
    }

    [Test]
    public void A_selection_in_progress_keeps_one_set_and_exclusions_follow_the_slots()
    {
        _manager.Apply(Snapshot(Replica("a", 1), Replica("b", 2)), initial: true);
        foreach (var replica in _membership.Current.Replicas)
        {
            Admit(replica, _time);
        }

        var selector = new ReplicaSelector(_membership, LoadBalancing.RoundRobin, _time);
        var b = _membership.Current.Replicas[1];
        _manager.Apply(Snapshot(Replica("c", 3), Replica("b", 2)));
        Admit(_membership.Current.Replicas[0], _time);

        var picks = Enumerable.Range(0, 6).Select(i => selector.Select(ReplicaRequirement.Any, excluded: 1UL << b.Index, out _)?.Name).ToList();
        Assert.That(picks, Is.All.EqualTo("c"), "b is excluded by its slot, whatever its position in the new set; a is gone");
    }

    [Test]
    public async Task A_topology_reported_while_the_cluster_stops_changes_nothing()
    {
        _manager.Apply(Snapshot(Replica("a", 1)), initial: true);
        var before = _membership.Current;
        await _monitor.DisposeAsync();

        _manager.Apply(Snapshot(Replica("a", 1), Replica("b", 2)));

        Assert.That(_membership.Current, Is.SameAs(before));
        Assert.Throws<ObjectDisposedException>(() => _built[1].DataSource.CreateConnection().Open(), "the endpoint built for it is let go");
    }
}
