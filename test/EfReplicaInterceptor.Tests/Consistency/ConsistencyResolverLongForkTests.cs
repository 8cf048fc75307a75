using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Tests.Consistency;

/// <summary>
/// The one entry of the Long Fork wait, <see cref="ConsistencyResolver.BeforePrimaryAsync(ScopeState?, bool, CancellationToken)"/>,
/// which the router calls for every command EF runs on the primary (a write, a transaction, a pinned session, a
/// <c>UsePrimary()</c> read on an open connection) and the read executor for every read it runs on the primary (decided so, or
/// after its replica failed), without a server: which scopes it checks (a standby read since the last check, a restored
/// token), what it asks (the scope's standby, a standby known to have a token's position, else the unfiltered wait), and
/// that it costs nothing otherwise or when switched off.
/// </summary>
public sealed class ConsistencyResolverLongForkTests
{
    private FakeLongForkRoundTrips _trips = null!;
    private ResolverCluster _cluster = null!;

    private ReplicaEndpoint R0 => _cluster.Replicas[0];

    [SetUp]
    public void CreateCluster()
    {
        _trips = new FakeLongForkRoundTrips { Primary = new PrimaryTransactions([7], Xmax: 8, Committed: null), OnStandby = [7] };
        _trips.Invisible.Enqueue(0);
        _cluster = new ResolverCluster(longFork: _trips);
    }

    [TearDown]
    public void Dispose() => _cluster.Dispose();

    [TestCase(false)]
    [TestCase(true)]
    public async Task A_command_for_the_primary_of_a_scope_that_read_on_a_standby_waits_once_for_what_the_standby_showed(bool async)
    {
        var scope = _cluster.Scope(onReplica: 0);
        _cluster.Served(scope, R0);

        await _cluster.Resolver.BeforePrimaryAsync(scope, null, async, CancellationToken.None);
        var afterFirst = _trips.Calls.Count;
        await _cluster.Resolver.BeforePrimaryAsync(scope, null, async, CancellationToken.None);

        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "standby r0 [7] from 8", "invisible [7]" }));
        Assert.That(_trips.Calls, Has.Count.EqualTo(afterFirst), "checked: the next command on the primary costs nothing");
    }

    [Test]
    public async Task A_scope_that_read_only_on_the_primary_or_has_no_history_costs_nothing()
    {
        var primaryOnly = new ScopeState();
        primaryOnly.Reads.StartedOnPrimary();

        await _cluster.Resolver.BeforePrimaryAsync(primaryOnly, null, async: true, CancellationToken.None);
        await _cluster.Resolver.BeforePrimaryAsync(new ScopeState(), null, async: true, CancellationToken.None);
        await _cluster.Resolver.BeforePrimaryAsync(null, null, async: true, CancellationToken.None);

        Assert.That(_trips.Calls, Is.Empty);
    }

    [Test]
    public async Task Switched_off_nothing_is_asked_even_after_a_standby_read()
    {
        using var off = new ResolverCluster(); // LongForkWait = false: the cluster builds no wait (LongForkWait.For)
        var scope = off.Scope(onReplica: 0);
        off.Served(scope, off.Replicas[0]);

        var pending = off.Resolver.BeforePrimaryAsync(scope, null, async: true, CancellationToken.None);

        Assert.That(pending.IsCompletedSuccessfully, Is.True);
        Assert.That(LongForkWait.For("c", new EfReplicaOptions { Primary = "Host=h", LongForkWait = false }, null!, null!, null!, TimeProvider.System), Is.Null);
    }

    [Test]
    public async Task A_read_that_failed_over_from_its_standby_waits_for_every_transaction_the_primary_s_snapshot_does_not_show()
    {
        var scope = _cluster.Scope(onReplica: 0);
        _cluster.Served(scope, R0);
        R0.ReportFailure(); // the read failed there: the executor's next run is on the primary
        _trips.Running = [8];

        await _cluster.Resolver.BeforePrimaryAsync(scope, null, async: true, CancellationToken.None);

        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "running from 8", "invisible [7, 8]" }), "the failed standby is not asked");
        Assert.That(scope.Reads.LongForkDue, Is.False);
    }

    [Test]
    public async Task The_ambient_scope_s_standby_read_is_checked_for_a_command_of_a_lease_that_read_nowhere()
    {
        var lease = new ScopeState();
        using var ambientScope = EfReplicaScope.BeginConsistency();
        var ambient = ambientScope.StateFor(_cluster.Resolver);
        ambient.Reads.Stick(R0, R0.Incarnation);
        _cluster.Served(ambient, R0);

        await _cluster.Resolver.BeforePrimaryAsync(lease, async: true, CancellationToken.None); // the router's call: the ambient scope is found

        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "standby r0 [7] from 8", "invisible [7]" }));
    }

    [Test]
    public async Task A_restored_token_counts_as_a_standby_read_and_a_replica_known_to_have_its_position_is_asked_for_it()
    {
        _cluster.PrimarySampled(2_000); // the cluster's system identifier is known
        using var restored = EfReplicaScope.BeginConsistency(ConsistencyToken.Format(ResolverCluster.System, 900));

        await _cluster.Resolver.BeforePrimaryAsync(null, async: true, CancellationToken.None);

        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "standby r0 [7] from 8", "invisible [7]" }), "r0 has replayed 1,000 >= 900");
        Assert.That(restored.StateFor(_cluster.Resolver).RestoredToken, Is.Not.Null, "the token itself is left for the resolver to check");
    }

    [Test]
    public async Task A_restored_token_whose_position_no_replica_is_known_to_have_takes_the_unfiltered_wait()
    {
        _cluster.PrimarySampled(2_000);
        using var restored = EfReplicaScope.BeginConsistency(ConsistencyToken.Format(ResolverCluster.System, 1_500));

        await _cluster.Resolver.BeforePrimaryAsync(null, async: true, CancellationToken.None);

        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "running from 8", "invisible [7]" }));
    }

    [Test]
    public async Task A_token_checked_by_the_resolver_keeps_its_position_for_the_next_move_to_the_primary()
    {
        _cluster.PrimarySampled(2_000);
        var scope = new ScopeState();
        scope.Restore(ConsistencyToken.Format(ResolverCluster.System, 900));
        R0.ReportFailure();
        _cluster.Replicas[1].ReportFailure(); // the read goes to the primary: the resolver checks the token on the way

        var choice = await _cluster.ResolveAsync(scope);
        await _cluster.Resolver.BeforePrimaryAsync(scope, null, async: true, CancellationToken.None);

        Assert.That((choice.Replica, scope.RestoredToken), Is.EqualTo(((ReplicaEndpoint?)null, (string?)null)));
        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "running from 8", "invisible [7]" }), "no replica in rotation has 900: unfiltered");
    }

    [Test]
    public async Task A_token_for_another_cluster_only_asks_nothing_here()
    {
        _cluster.PrimarySampled(2_000);
        using var restored = EfReplicaScope.BeginConsistency(ConsistencyToken.Format(0x0BAD_F00D, 900), InvalidTokenHandling.Ignore);

        await _cluster.Resolver.BeforePrimaryAsync(null, async: true, CancellationToken.None);

        Assert.That(_trips.Calls, Is.Empty);
        Assert.That(restored.StateFor(_cluster.Resolver).Reads.LongForkDue, Is.False, "and it is not looked at again");
    }

    [Test]
    public async Task Before_the_cluster_s_identity_is_known_a_restored_token_takes_the_unfiltered_wait()
    {
        using var restored = EfReplicaScope.BeginConsistency(ConsistencyToken.Format(ResolverCluster.System, 900));

        await _cluster.Resolver.BeforePrimaryAsync(null, async: true, CancellationToken.None);

        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "running from 8", "invisible [7]" }));
    }
}
