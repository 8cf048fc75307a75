using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Tests.Consistency;

/// <summary>
/// The resolver's other round trips without a server: a restored token (checked on first use, its cluster learned by one
/// capture when the monitor has not seen the primary yet, a position from the future lowered at the next primary sample),
/// a token's position (what the scope wrote and saw, bounded by its replica when it answers, else by the primary), and a
/// replica's replay check.
/// </summary>
public sealed class ConsistencyResolverTokenTests
{
    private ResolverCluster _cluster = null!;

    [SetUp]
    public void CreateCluster() => _cluster = new ResolverCluster();

    [TearDown]
    public void Dispose() => _cluster.Dispose();

    [Test]
    public void A_malformed_token_or_one_of_an_unknown_cluster_throws_naming_the_cluster()
    {
        var malformed = new ScopeState();
        malformed.Restore("efr1.anything");
        var foreign = new ScopeState();
        foreign.Restore(ConsistencyToken.Format(0x0BAD_F00D_0BAD_F00D, 1_000));
        _cluster.PrimarySampled(1_000);

        Assert.ThrowsAsync<EfReplicaConsistencyTokenException>(async () => await _cluster.ResolveAsync(malformed));
        Assert.ThrowsAsync<EfReplicaConsistencyTokenException>(async () => await _cluster.ResolveAsync(foreign));
    }

    [Test]
    public async Task A_token_checked_before_the_primary_was_seen_learns_the_cluster_by_one_capture_and_requires_its_position()
    {
        var scope = new ScopeState();
        scope.Restore(ConsistencyToken.Format(ResolverCluster.System, 1_500));
        _cluster.RoundTrips.Replays["r0"] = (1_600, ResolverCluster.Run);

        var choice = await _cluster.ResolveAsync(scope, readYourWrites: true);

        Assert.That((choice.Replica?.Name, _cluster.RoundTrips.Captures), Is.EqualTo(("r0", 1)));
        Assert.That((scope.RequiredLsn, scope.Reads.Floor, scope.RestoredToken), Is.EqualTo((1_500UL, 1_500UL, (string?)null)));
    }

    [Test]
    public async Task A_token_from_the_future_is_lowered_to_the_next_primary_sample()
    {
        _cluster.PrimarySampled(2_000);
        var scope = new ScopeState();
        scope.Restore(ConsistencyToken.Format(ResolverCluster.System, 9_000));
        _cluster.RoundTrips.Replays["r0"] = (2_100, ResolverCluster.Run);
        _cluster.RoundTrips.Replays["r1"] = (2_100, ResolverCluster.Run);

        var before = await _cluster.ResolveAsync(scope, readYourWrites: true);
        Assert.That((before.Replica, before.Reason, scope.RequiredLsn), Is.EqualTo(((ReplicaEndpoint?)null, RoutingReason.AfterWrite, 9_000UL)));

        _cluster.Time.Advance(TimeSpan.FromMilliseconds(1));
        _cluster.PrimarySampled(2_100);
        var after = await _cluster.ResolveAsync(scope, readYourWrites: true);

        Assert.That((after.Replica?.Name, scope.RequiredLsn, scope.Reads.Floor), Is.EqualTo(("r0", 2_100UL, 2_100UL)));
        Assert.That(_cluster.RoundTrips.Captures, Is.Zero, "the monitor's samples did it");
    }

    [Test]
    public async Task A_token_s_position_covers_a_pending_write_by_one_capture()
    {
        var scope = _cluster.Wrote();

        var position = await _cluster.Resolver.SeenPositionAsync(scope, CancellationToken.None);

        Assert.That((position, _cluster.RoundTrips.Captures, scope.IsPending), Is.EqualTo((2_000UL, 1, false)));
    }

    [Test]
    public async Task A_token_s_position_bounds_the_reads_on_the_scope_s_replica_by_asking_it_and_by_the_primary_when_it_fails()
    {
        var answered = _cluster.Scope(onReplica: 0);
        _cluster.Served(answered, _cluster.Replicas[0]);
        _cluster.RoundTrips.Replays["r0"] = (1_200, ResolverCluster.Run);

        var bounded = await _cluster.Resolver.SeenPositionAsync(answered, CancellationToken.None);
        Assert.That((bounded, _cluster.RoundTrips.Captures), Is.EqualTo((1_200UL, 0)));

        var failed = _cluster.Scope(onReplica: 1);
        _cluster.Served(failed, _cluster.Replicas[1]);
        var byPrimary = await _cluster.Resolver.SeenPositionAsync(failed, CancellationToken.None);

        Assert.That((byPrimary, _cluster.RoundTrips.Captures, _cluster.Replicas[1].IsAdmitted), Is.EqualTo((2_000UL, 1, false)), "the failed check took r1 out of rotation");
        Assert.That(_cluster.RoundTrips.ReplayChecks, Is.EqualTo(new[] { "r0", "r1" }));
    }

    [Test]
    public async Task A_replica_that_answers_as_a_primary_has_no_replay_position()
    {
        _cluster.RoundTrips.Replays["r0"] = (null, ResolverCluster.Run);

        var answered = await _cluster.Resolver.CheckReplayAsync(_cluster.Replicas[0], async: true, CancellationToken.None);

        Assert.That((answered, _cluster.Replicas[0].KnownReplayLsn, _cluster.Replicas[0].IsAdmitted), Is.EqualTo((false, 1_000UL, true)));
    }
}
