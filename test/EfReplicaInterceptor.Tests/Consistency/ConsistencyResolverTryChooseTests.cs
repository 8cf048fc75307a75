using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Topology;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Consistency;

/// <summary>
/// The decision monotonic reads make without a round trip: a scope with no past takes the balancing policy's replica and
/// keeps it; a scope keeps its own replica while it is in rotation in the same run and has replayed the scope's floor, and
/// otherwise the read is left to the resolution that bounds what the scope saw. No server: nothing is opened.
/// </summary>
public sealed class ConsistencyResolverTryChooseTests
{
    private const long Run = 1_000;
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(10);
    private readonly FakeTimeProvider _time = new();
    private readonly List<IDisposable> _disposables = [];
    private ReplicaEndpoint[] _replicas = null!;
    private ConsistencyResolver _scopes = null!;
    private PrimaryPosition _position = null!;

    [SetUp]
    public void CreateCluster()
    {
        var dataSource = NpgsqlDataSource.Create("Host=127.0.0.1;Port=1;Database=none;Username=nobody");
        var metrics = new EfReplicaMetrics();
        _disposables.AddRange([dataSource, metrics]);
        _replicas = [new ReplicaEndpoint(0, "r0", dataSource, _time, TimeSpan.FromSeconds(1)), new ReplicaEndpoint(1, "r1", dataSource, _time, TimeSpan.FromSeconds(1))];
        foreach (var replica in _replicas)
        {
            Healthy(replica, replay: 1_000);
        }

        var selector = new ReplicaSelector(_replicas, LoadBalancing.RoundRobin, [1, 1], _time);
        var options = new EfReplicaOptions { Primary = "Host=127.0.0.1;Port=1" };
        _position = new PrimaryPosition();
        var longFork = new LongForkWait("c", new LongForkRoundTrips(_replicas[0].Server), TimeSpan.FromSeconds(3), metrics, NullLogger.Instance, _time);
        _scopes = new ConsistencyResolver("c", new ServerRoundTrips(_replicas[0].Server, captureWritePosition: false), _position, selector, options, metrics, NullLoggerFactory.Instance, _time, longFork);
    }

    [TearDown]
    public void Dispose()
    {
        foreach (var disposable in _disposables)
        {
            disposable.Dispose();
        }

        _disposables.Clear();
    }

    [Test]
    public void A_scope_without_a_past_takes_the_next_replica_in_turn_and_keeps_it()
    {
        var first = new ScopeState();
        var second = new ScopeState();

        var firstPicks = Enumerable.Range(0, 4).Select(_ => Choose(first)).ToList();
        _ = Choose(new ScopeState()); // another scope in between
        var secondPick = Choose(second);

        Assert.That(firstPicks, Is.All.EqualTo("r0"), "a scope stays on its replica");
        Assert.That(secondPick, Is.EqualTo("r0"), "scopes are spread in turn: r0, r1, r0");
        Assert.That(first.Reads.Sticky.Replica, Is.SameAs(_replicas[0]));
    }

    [Test]
    public void The_lease_s_replica_is_shared_with_the_ambient_scope_it_reads_in()
    {
        var lease = new ScopeState();
        var ambient = new ScopeState();

        var pick = _scopes.TryChoose(lease, ambient, ReplicaRequirement.Any, out var replica, out _, out _);

        Assert.That(pick, Is.True);
        Assert.That(ambient.Reads.Sticky.Replica, Is.SameAs(replica));
        Assert.That(lease.Reads.Sticky.Replica, Is.SameAs(replica));
    }

    [Test]
    public void A_restarted_replica_out_of_rotation_a_floor_it_has_not_replayed_or_a_read_on_the_primary_needs_resolving()
    {
        var restarted = Scope(onReplica: 0);
        _replicas[0].ObserveReplay(500, Run + 1, _time.GetTimestamp()); // came back behind

        var lagging = Scope(onReplica: 1);
        lagging.Reads.Raise(5_000);

        var primary = Scope(onReplica: 0);
        primary.Reads.StartedOnPrimary();

        Assert.Multiple(() =>
        {
            Assert.That(_scopes.TryChoose(restarted, null, ReplicaRequirement.Any, out _, out _, out _), Is.False, "restarted");
            Assert.That(_scopes.TryChoose(lagging, null, ReplicaRequirement.Any, out _, out _, out _), Is.False, "behind the floor");
            Assert.That(_scopes.TryChoose(primary, null, ReplicaRequirement.Any, out _, out _, out _), Is.False, "read on the primary");
        });

        var paused = Scope(onReplica: 1);
        _replicas[1].ReportFailure();
        Assert.That(_scopes.TryChoose(paused, null, ReplicaRequirement.Any, out _, out _, out _), Is.False, "out of rotation");
    }

    [Test]
    public async Task A_scope_whose_replica_left_the_topology_moves_as_if_it_had_left_the_rotation()
    {
        var scope = Scope(onReplica: 1);
        scope.Reads.Raise(900);
        _ = _replicas[1].Server.Usage.CloseAsync(); // removed from the topology (what TopologyManager does)

        Assert.Multiple(() =>
        {
            Assert.That(_scopes.TryChoose(scope, null, ReplicaRequirement.Any, out _, out _, out _), Is.False, "its own replica no longer qualifies: resolved like one out of rotation");
            Assert.That(Enumerable.Range(0, 4).Select(i => Choose(new ScopeState())), Is.All.EqualTo("r0"), "a new scope never gets it");
        });
        Assert.That(await _scopes.CheckReplayAsync(_replicas[1], async: true, CancellationToken.None), Is.False, "no replay check is sent to it");
    }

    [Test]
    public void With_no_replica_in_rotation_a_scope_with_a_past_goes_to_the_primary_at_once_even_one_that_read_on_a_standby()
    {
        var readThere = Scope(onReplica: 1);
        readThere.Reads.Served(_replicas[1], _replicas[1].Incarnation, _time.GetTimestamp());
        var primaryOnly = new ScopeState();
        primaryOnly.Reads.StartedOnPrimary();
        foreach (var replica in _replicas)
        {
            replica.ReportFailure();
        }

        Assert.Multiple(() =>
        {
            // The Long Fork wait no longer needs the resolution: it runs where the read is run on the primary (BeforePrimaryAsync).
            Assert.That(_scopes.TryChoose(readThere, null, ReplicaRequirement.Any, out var fromStandby, out _, out _), Is.True, "read on a standby: the primary, no round trip here");
            Assert.That(fromStandby, Is.Null);
            Assert.That(_scopes.TryChoose(primaryOnly, null, ReplicaRequirement.Any, out var replica, out _, out _), Is.True, "no standby read: the primary, no round trip");
            Assert.That(replica, Is.Null);
        });
    }

    [Test]
    public void A_scope_keeps_its_replica_when_it_has_replayed_the_floor()
    {
        var scope = Scope(onReplica: 1);
        scope.Reads.Raise(900);

        var kept = _scopes.TryChoose(scope, null, ReplicaRequirement.Any, out var replica, out _, out _);

        Assert.That((kept, replica?.Name), Is.EqualTo((true, "r1")));
    }

    [Test]
    public void A_read_on_the_primary_is_bounded_by_the_primary_s_position_sampled_after_it_so_the_scope_keeps_its_replica_without_a_capture()
    {
        var scope = Scope(onReplica: 1);
        _time.Advance(TimeSpan.FromMilliseconds(10));
        var before = _time.GetTimestamp();
        _time.Advance(TimeSpan.FromMilliseconds(10));
        scope.Reads.Served(null, 0, _time.GetTimestamp()); // a read on the primary finished now
        _position.Record(_time.GetTimestamp(), lsn: 800, systemIdentifier: 1, sentAt: before);

        Assert.That(Choose(scope), Is.EqualTo("resolve"), "a sample sent before the read finished bounds nothing");

        _time.Advance(TimeSpan.FromMilliseconds(10));
        _position.Record(_time.GetTimestamp(), lsn: 900, systemIdentifier: 1, sentAt: _time.GetTimestamp());
        Assert.Multiple(() =>
        {
            Assert.That(Choose(scope), Is.EqualTo("r1"), "bounded by the sample sent after it: no round trip");
            Assert.That(scope.Reads.Floor, Is.EqualTo(900UL));
        });

        _position.Record(_time.GetTimestamp() + 1, lsn: 1_100, systemIdentifier: 1, sentAt: _time.GetTimestamp() + 1);
        var ahead = Scope(onReplica: 1);
        ahead.Reads.Served(null, 0, _time.GetTimestamp());
        Assert.That(Choose(ahead), Is.EqualTo("resolve"), "a bound beyond what the replica replayed (1,000) keeps the read for the resolution");
    }

    private ScopeState Scope(int onReplica)
    {
        var state = new ScopeState();
        state.Reads.Stick(_replicas[onReplica], _replicas[onReplica].Incarnation);
        return state;
    }

    private string? Choose(ScopeState scope)
        => _scopes.TryChoose(scope, null, ReplicaRequirement.Any, out var replica, out _, out _) ? replica?.Name : "resolve";

    private void Healthy(ReplicaEndpoint replica, ulong replay)
    {
        var health = new ReplicaHealth { Reachable = true, InRecovery = true, Lag = TimeSpan.Zero, LagBytes = 0, ReplayLsn = replay, MeasuredAt = _time.GetTimestamp() };
        replica.Health = health;
        replica.Availability.ReportProbe(health, Budget, maxLagBytes: null);
        replica.ObserveReplay(replay, Run, _time.GetTimestamp());
    }
}
