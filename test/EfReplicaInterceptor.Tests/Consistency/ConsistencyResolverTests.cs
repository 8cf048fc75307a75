using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Tests.Consistency;

/// <summary>
/// Every branch of the one consistency resolver without a server: the round trips are a fake (counted), the clock a
/// <c>FakeTimeProvider</c>. A read of a scope goes to its own replica while it qualifies, elsewhere only once what the scope
/// saw is bounded (by a sample when one was sent after its reads, else by asking its replica, else by one capture on the
/// primary) and that replica has replayed the bound, else to the primary with the reason that says why.
/// </summary>
public sealed class ConsistencyResolverTests
{
    private ResolverCluster _cluster = null!;

    private ReplicaEndpoint R0 => _cluster.Replicas[0];

    private ReplicaEndpoint R1 => _cluster.Replicas[1];

    [SetUp]
    public void CreateCluster() => _cluster = new ResolverCluster();

    [TearDown]
    public void Dispose() => _cluster.Dispose();

    [Test]
    public void A_restored_token_is_a_past_so_a_plain_read_is_resolved_and_without_monotonic_reads_it_is_not_looked_at()
    {
        var restored = new ScopeState();
        restored.Restore("efr1.anything");
        using var off = new ResolverCluster(monotonicReads: false);

        Assert.Multiple(() =>
        {
            Assert.That(_cluster.Resolver.TryChoose(restored, null, ReplicaRequirement.Any, out _, out _, out _), Is.False);
            Assert.That(off.Resolver.TryChoose(restored, null, ReplicaRequirement.Any, out var replica, out _, out var hadPast), Is.True);
            Assert.That((replica?.Name, hadPast, restored.Reads.HasPast), Is.EqualTo(("r0", false, false)), "no history kept: nothing sticks");
        });
    }

    [Test]
    public async Task A_scope_with_a_past_and_no_replica_in_rotation_goes_to_the_primary_at_once()
    {
        var scope = _cluster.Scope(onReplica: 0);
        _cluster.Served(scope, R0);
        R0.ReportFailure();
        R1.ReportFailure();

        var decided = _cluster.Resolver.TryChoose(scope, null, ReplicaRequirement.Any, out var replica, out _, out _);
        var resolved = await _cluster.ResolveAsync(scope);

        Assert.That((decided, replica), Is.EqualTo((true, (ReplicaEndpoint?)null)));
        Assert.That((resolved.Replica, resolved.Reason, _cluster.RoundTrips.Captures), Is.EqualTo(((ReplicaEndpoint?)null, RoutingReason.ReplicaUnavailable, 0)));
    }

    [Test]
    public void The_lease_and_the_ambient_scope_on_different_replicas_are_resolved()
    {
        var lease = _cluster.Scope(onReplica: 0);
        var ambient = _cluster.Scope(onReplica: 1);

        Assert.That(_cluster.Resolver.TryChoose(lease, ambient, ReplicaRequirement.Any, out _, out _, out _), Is.False);
    }

    [Test]
    public async Task After_a_write_one_capture_gives_the_position_and_the_replica_known_to_have_replayed_it_takes_the_read()
    {
        var lease = _cluster.Wrote();
        _cluster.PrimaryLsn = 1_000;

        var choice = await _cluster.ResolveAsync(lease, readYourWrites: true);

        Assert.That((choice.Replica?.Name, choice.Constrained, _cluster.RoundTrips.Captures), Is.EqualTo(("r0", true, 1)));
        Assert.That((lease.IsPending, lease.RequiredLsn, _cluster.RoundTrips.ReplayChecks.Count), Is.EqualTo((false, 1_000UL, 0)));
        Assert.That(lease.Reads.Sticky.Replica, Is.SameAs(R0), "the replica becomes the scope's own");
    }

    [Test]
    public async Task After_a_write_no_replica_known_to_have_it_the_replicas_are_asked_in_turn()
    {
        var lease = _cluster.Wrote();
        _cluster.RoundTrips.Replays["r0"] = (1_500, ResolverCluster.Run);
        _cluster.RoundTrips.Replays["r1"] = (2_500, ResolverCluster.Run);

        var choice = await _cluster.ResolveAsync(lease, readYourWrites: true);

        Assert.That((choice.Replica?.Name, lease.RequiredLsn), Is.EqualTo(("r1", 2_000UL)));
        Assert.That(_cluster.RoundTrips.ReplayChecks, Is.EqualTo(new[] { "r0", "r1" }));
    }

    [Test]
    public async Task After_a_write_no_replica_has_it_and_no_wait_is_allowed_so_the_primary()
    {
        var lease = _cluster.Wrote();
        _cluster.RoundTrips.Replays["r0"] = (1_500, ResolverCluster.Run);
        _cluster.RoundTrips.Replays["r1"] = (1_500, ResolverCluster.Run);

        var choice = await _cluster.ResolveAsync(lease, readYourWrites: true);

        Assert.That((choice.Replica, choice.Reason), Is.EqualTo(((ReplicaEndpoint?)null, RoutingReason.AfterWrite)));
    }

    [Test]
    public async Task After_a_write_the_read_waits_up_to_the_maximum_for_a_replica_to_catch_up()
    {
        using var cluster = new ResolverCluster(maxWait: TimeSpan.FromSeconds(1));
        var lease = cluster.Wrote();
        cluster.RoundTrips.Replays["r0"] = (1_500, ResolverCluster.Run);
        cluster.RoundTrips.Replays["r1"] = (1_500, ResolverCluster.Run);

        var pending = cluster.ResolveAsync(lease, readYourWrites: true).AsTask();
        Assert.That(pending.IsCompleted, Is.False, "waiting on the cluster's clock");
        cluster.RoundTrips.Replays["r1"] = (2_000, ResolverCluster.Run);
        var choice = await Drive(cluster, pending);

        Assert.That((choice.Replica?.Name, choice.Constrained), Is.EqualTo(("r1", true)));
        Assert.That(cluster.RoundTrips.ReplayChecks, Has.Count.GreaterThanOrEqualTo(4), "asked again after the pause");
    }

    [Test]
    public async Task After_a_write_a_wait_that_ends_without_a_replica_sends_the_read_to_the_primary()
    {
        using var cluster = new ResolverCluster(maxWait: TimeSpan.FromMilliseconds(50));
        var lease = cluster.Wrote();
        cluster.RoundTrips.Replays["r0"] = (1_500, ResolverCluster.Run);
        cluster.RoundTrips.Replays["r1"] = (1_500, ResolverCluster.Run);

        var choice = await Drive(cluster, cluster.ResolveAsync(lease, readYourWrites: true).AsTask());

        Assert.That((choice.Replica, choice.Reason), Is.EqualTo(((ReplicaEndpoint?)null, RoutingReason.AfterWrite)));
    }

    [Test]
    public async Task The_capture_runs_on_the_command_s_own_primary_connection_when_there_is_one()
    {
        var lease = _cluster.Wrote();
        using var efConnection = new Npgsql.NpgsqlConnection();

        await _cluster.Resolver.ResolveAsync(lease, null, ReplicaRequirement.Any, readYourWrites: true, efConnection, async: true, CancellationToken.None);
        var token = await _cluster.Resolver.SeenPositionAsync(_cluster.Wrote(), CancellationToken.None);

        Assert.That(_cluster.RoundTrips.CapturedOn, Is.EqualTo(new[] { efConnection, null }), "a token's capture has no command: the pool's");
    }

    [Test]
    public async Task A_position_that_cannot_be_captured_sends_the_read_to_the_primary_and_the_write_stays_pending()
    {
        var lease = _cluster.Wrote();
        _cluster.RoundTrips.PrimaryFails = new Npgsql.NpgsqlException("refused");

        var choice = await _cluster.ResolveAsync(lease, readYourWrites: true);

        Assert.That((choice.Replica, choice.Reason, lease.IsPending), Is.EqualTo(((ReplicaEndpoint?)null, RoutingReason.AfterWrite, true)));
    }

    [Test]
    public async Task The_scope_s_own_replica_takes_the_read_when_known_to_have_the_writes_and_after_a_check_when_not()
    {
        var lease = _cluster.Scope(onReplica: 0);
        _cluster.Served(lease, R0);
        _cluster.Wrote(lease);
        _cluster.PrimaryLsn = 1_000;

        var known = await _cluster.ResolveAsync(lease, readYourWrites: true);
        Assert.That((known.Replica?.Name, _cluster.RoundTrips.ReplayChecks.Count), Is.EqualTo(("r0", 0)), "known: no check");

        _cluster.Wrote(lease);
        _cluster.PrimaryLsn = 1_500;
        _cluster.RoundTrips.Replays["r0"] = (1_600, ResolverCluster.Run);
        _cluster.Sampled(R1, replay: 1_600); // another replica known to have it: the scope's own still comes first
        var checkedOwn = await _cluster.ResolveAsync(lease, readYourWrites: true);
        Assert.That(checkedOwn.Replica?.Name, Is.EqualTo("r0"));
        Assert.That(_cluster.RoundTrips.ReplayChecks, Is.EqualTo(new[] { "r0" }), "asked once");
    }

    [Test]
    public async Task A_scope_leaving_a_restarted_replica_bounds_its_reads_there_by_one_capture_then_takes_a_replica_that_has_the_bound()
    {
        var scope = _cluster.Scope(onReplica: 0);
        _cluster.Served(scope, R0);
        _cluster.Sampled(R0, replay: 500, run: ResolverCluster.Run + 1); // restarted behind
        _cluster.RoundTrips.Replays["r0"] = (500, ResolverCluster.Run + 1);
        _cluster.RoundTrips.Replays["r1"] = (2_100, ResolverCluster.Run);

        var choice = await _cluster.ResolveAsync(scope);

        Assert.That((choice.Replica?.Name, choice.Constrained, _cluster.RoundTrips.Captures, scope.Reads.Floor), Is.EqualTo(("r1", true, 1, 2_000UL)));
        Assert.That(scope.Reads.Sticky.Replica, Is.SameAs(R1));
    }

    [Test]
    public async Task A_primary_sample_sent_after_the_scope_s_reads_bounds_them_without_a_capture()
    {
        var scope = _cluster.Scope(onReplica: 0);
        _cluster.Served(scope, R0);
        _cluster.Sampled(R0, replay: 500, run: ResolverCluster.Run + 1);
        _cluster.PrimarySampled(1_800);
        _cluster.RoundTrips.Replays["r0"] = (500, ResolverCluster.Run + 1);
        _cluster.RoundTrips.Replays["r1"] = (1_900, ResolverCluster.Run);

        var choice = await _cluster.ResolveAsync(scope);

        Assert.That((choice.Replica?.Name, _cluster.RoundTrips.Captures, scope.Reads.Floor), Is.EqualTo(("r1", 0, 1_800UL)));
    }

    [Test]
    public async Task A_replica_sample_sent_after_the_scope_s_reads_bounds_them_when_its_replica_left_the_topology()
    {
        var scope = _cluster.Scope(onReplica: 0);
        _cluster.Served(scope, R0);
        _cluster.Sampled(R0, replay: 1_200);
        _ = R0.Server.Usage.CloseAsync(); // removed from the topology
        _cluster.RoundTrips.Replays["r1"] = (1_300, ResolverCluster.Run);

        var choice = await _cluster.ResolveAsync(scope);

        Assert.That((choice.Replica?.Name, _cluster.RoundTrips.Captures, scope.Reads.Floor), Is.EqualTo(("r1", 0, 1_200UL)));
        Assert.That(_cluster.RoundTrips.ReplayChecks, Is.EqualTo(new[] { "r1" }), "a retired replica is never asked");
    }

    [Test]
    public async Task A_read_on_the_primary_is_bounded_by_one_capture_before_the_scope_reads_elsewhere()
    {
        var scope = new ScopeState();
        _cluster.Resolver.RunsOnPrimary(scope);
        _cluster.PrimaryLsn = 900;

        Assert.That(_cluster.Resolver.TryChoose(scope, null, ReplicaRequirement.Any, out _, out _, out _), Is.False, "unbounded: resolved");
        var choice = await _cluster.ResolveAsync(scope);

        Assert.That((choice.Replica?.Name, _cluster.RoundTrips.Captures, scope.Reads.Floor, scope.Reads.Unbounded), Is.EqualTo(("r0", 1, 900UL, false)));
    }

    [Test]
    public async Task No_replica_that_has_replayed_what_the_scope_saw_is_lagging_behind_it()
    {
        var scope = new ScopeState();
        scope.Reads.Raise(5_000);
        _cluster.RoundTrips.Replays["r0"] = (1_000, ResolverCluster.Run);
        _cluster.RoundTrips.Replays["r1"] = (1_000, ResolverCluster.Run);

        var choice = await _cluster.ResolveAsync(scope);

        Assert.That((choice.Replica, choice.Reason, _cluster.RoundTrips.Captures), Is.EqualTo(((ReplicaEndpoint?)null, RoutingReason.ReplicaLagging, 0)));
    }

    [Test]
    public async Task Without_monotonic_reads_a_scope_has_no_history_read_your_writes_alone_decides()
    {
        using var off = new ResolverCluster(monotonicReads: false);
        var lease = off.Wrote();
        off.PrimaryLsn = 1_000;
        off.Resolver.ReadServed(lease, off.Replicas[1]);
        off.Resolver.RunsOnPrimary(lease);

        var afterWrite = await off.ResolveAsync(lease, readYourWrites: true);
        var plain = off.Resolver.TryChoose(lease, null, ReplicaRequirement.Any, out var replica, out _, out var hadPast);

        Assert.That((afterWrite.Replica?.Name, afterWrite.Constrained), Is.EqualTo(("r0", true)));
        Assert.That((plain, replica?.Name, hadPast), Is.EqualTo((true, "r1", false)), "the next replica in turn, not the scope's");
        Assert.That((lease.Reads.HasPast, lease.Reads.Unbounded, lease.Reads.Sticky.Replica), Is.EqualTo((false, false, (ReplicaEndpoint?)null)));
    }

    [Test]
    public async Task Without_monotonic_reads_a_read_with_nothing_to_wait_for_takes_any_replica_unconstrained()
    {
        using var off = new ResolverCluster(monotonicReads: false, invalidTokens: InvalidTokenHandling.Ignore);
        var scope = new ScopeState();
        scope.Restore("not a token");

        var choice = await off.ResolveAsync(scope, readYourWrites: true);

        Assert.That((choice.Replica?.Name, choice.Constrained, scope.TokenRejected), Is.EqualTo(("r0", false, true)));
    }

    [Test]
    public void Reads_served_and_commands_on_the_primary_are_recorded_in_the_lease_s_history()
    {
        var lease = new ScopeState();
        _cluster.Resolver.ReadServed(lease, R1);
        Assert.That((lease.Reads.HasPast, lease.Reads.Unbounded), Is.EqualTo((true, true)), "not its own replica yet: unbounded");

        var onPrimary = new ScopeState();
        _cluster.Resolver.RunsOnPrimary(onPrimary);
        Assert.That(onPrimary.Reads.Unbounded, Is.True);
    }

    /// <summary>Advances the fake clock by the resolver's poll interval until the wait ends (bounded).</summary>
    private static async Task<ConsistencyChoice> Drive(ResolverCluster cluster, Task<ConsistencyChoice> pending)
    {
        for (var step = 0; step < 1_000 && !pending.Wait(TimeSpan.FromMilliseconds(1)); step++)
        {
            cluster.Time.Advance(TimeSpan.FromMilliseconds(5));
        }

        return await pending;
    }
}
