using System.Data.Common;
using System.Transactions;
using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Routing;
using EfReplicaInterceptor.Tests.Consistency;
using EfReplicaInterceptor.Topology;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Routing;

/// <summary>
/// The two places that hold a command of a scope that read on a standby before it runs on the primary, without a server
/// (the Long Fork round trips are a fake, the servers' data sources point at port 1, so nothing is ever opened before the
/// wait): the router, for a command EF runs on its own connection (a write, a read in a transaction), and the read
/// executor, for a read it runs on the primary (tagged <c>UsePrimary()</c>, or failed over from its replica).
/// </summary>
public sealed class LongForkRoutingTests
{
    private FakeLongForkRoundTrips _trips = null!;
    private ResolverCluster _cluster = null!;
    private NpgsqlDataSource _dataSource = null!;
    private CommandRouter _router = null!;

    private ReplicaEndpoint R0 => _cluster.Replicas[0];

    [SetUp]
    public void Create()
    {
        _trips = new FakeLongForkRoundTrips { Primary = new PrimaryTransactions([7], Xmax: 8, Committed: null), OnStandby = [7], Running = [8] };
        _trips.Invisible.Enqueue(0);
        _cluster = new ResolverCluster(longFork: _trips);
        _dataSource = NpgsqlDataSource.Create("Host=127.0.0.1;Port=1;Database=none;Username=nobody;Timeout=2");
        _router = Router(maxRetries: 1); // one retry (on the primary), then no wait
    }

    [TearDown]
    public void Dispose()
    {
        _cluster.Dispose();
        _dataSource.Dispose();
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task A_write_of_a_scope_that_read_on_a_standby_waits_before_EF_runs_it_on_the_primary(bool async)
    {
        var lease = LeaseThatReadOnR0();

        var result = await RouteAsync("UPDATE items SET seen = true WHERE id = 1", lease, async);

        Assert.That(result.HasResult, Is.False, "EF runs it on its own connection");
        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "standby r0 [7] from 8", "invisible [7]" }));
    }

    [Test]
    public async Task A_read_in_a_transaction_waits_once_and_the_next_command_costs_nothing()
    {
        var lease = LeaseThatReadOnR0();
        using var transaction = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled);

        await RouteAsync("SELECT 1", lease, async: true);
        var afterFirst = _trips.Calls.Count;
        await RouteAsync("SELECT 2", lease, async: true);

        Assert.That(afterFirst, Is.EqualTo(3));
        Assert.That(_trips.Calls, Has.Count.EqualTo(afterFirst), "checked: the flag is cleared");
    }

    [Test]
    public async Task A_lease_that_never_read_on_a_standby_asks_nothing()
    {
        var lease = new LeaseState();

        await RouteAsync("UPDATE items SET seen = true WHERE id = 1", lease, async: true);

        Assert.That(_trips.Calls, Is.Empty);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void A_read_tagged_UsePrimary_waits_before_the_executor_runs_it_on_the_primary(bool async)
    {
        var lease = LeaseThatReadOnR0();

        // The primary is unreachable here (port 1): the read fails after the wait, which is what is looked at.
        Assert.CatchAsync(async () => await RouteAsync($"-- {QueryTags.UsePrimary}\n\nSELECT 1", lease, async));

        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "standby r0 [7] from 8", "invisible [7]" }));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void A_read_tagged_UsePrimary_waits_before_its_first_run_not_only_before_a_retry(bool async)
    {
        _router = Router(maxRetries: 0); // the first run is the only one: a wait held only by the retries would never happen
        var lease = LeaseThatReadOnR0();

        Assert.CatchAsync(async () => await RouteAsync($"-- {QueryTags.UsePrimary}\n\nSELECT 1", lease, async));

        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "standby r0 [7] from 8", "invisible [7]" }));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void A_read_that_fails_over_from_its_standby_waits_for_every_transaction_the_primary_s_snapshot_does_not_show(bool async)
    {
        var lease = LeaseThatReadOnR0();
        _cluster.Replicas[1].ReportFailure(); // r0, the lease's own replica, is the only one in rotation: the read goes there

        // r0 is unreachable (port 1): the read fails there, r0 leaves the rotation, and the retry runs on the primary.
        Assert.CatchAsync(async () => await RouteAsync("SELECT 1", lease, async));

        Assert.That(R0.Availability.IsPaused, Is.True, "the read failed on r0");
        Assert.That(_trips.Calls, Is.EqualTo(new[] { "primary", "running from 8", "invisible [7, 8]" }), "the failed standby is not asked: the unfiltered wait");
    }

    private CommandRouter Router(int maxRetries)
    {
        var primary = new ReplicaEndpoint(9, "primary", _dataSource, _cluster.Time, TimeSpan.FromSeconds(1)).Server;
        var failover = new FailoverOptions { MaxRetries = maxRetries, PrimaryWait = TimeSpan.Zero };
        var telemetry = new RoutingTelemetry("c", false, _cluster.Metrics, NullLoggerFactory.Instance);
        var reads = new ReadExecutor("c", primary, _cluster.Selector, _cluster.Resolver, telemetry, _cluster.Metrics, failover, _cluster.Time, NullLoggerFactory.Instance);
        return new CommandRouter(
            new RoutingRules(ReadYourWritesMode.Off, TimeSpan.Zero, _cluster.Time),
            _cluster.Selector,
            _cluster.Resolver,
            reads,
            telemetry,
            new WriteFailureTranslator("c", false, NullLoggerFactory.Instance),
            new EfCommandWatchdog(primary),
            SqlClassifier.Default,
            _cluster.Time);
    }

    private LeaseState LeaseThatReadOnR0()
    {
        var lease = new LeaseState();
        lease.Scope.Reads.Stick(R0, R0.Incarnation);
        _cluster.Served(lease.Scope, R0);
        return lease;
    }

    private async Task<InterceptionResult<DbDataReader>> RouteAsync(string sql, LeaseState lease, bool async)
    {
        using var command = new NpgsqlCommand(sql);
        var eventData = new CommandEventData(
            null!, (_, _) => string.Empty, null!, command, null!, null!, DbCommandMethod.ExecuteReader, Guid.NewGuid(), Guid.NewGuid(), async, false, DateTimeOffset.UtcNow, CommandSource.LinqQuery);
        var pending = _router.RouteAsync(command, eventData, lease, default(InterceptionResult<DbDataReader>), ReaderOperation.Instance, async, CancellationToken.None);
        return async ? await pending : pending.GetAwaiter().GetResult();
    }
}
