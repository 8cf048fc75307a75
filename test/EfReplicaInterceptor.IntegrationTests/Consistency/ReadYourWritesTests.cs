using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Consistency;

/// <summary>
/// Read-your-writes against a standby that applies WAL 500 ms late (<c>recovery_min_apply_delay</c>): every read after a
/// write sees it, reads that follow no write stay on the replica, and with the feature off the same loop misses.
/// </summary>
[NonParallelizable]
public sealed class ReadYourWritesTests
{
    private const int Iterations = 500;
    private static readonly TimeSpan ApplyDelay = TimeSpan.FromMilliseconds(500);
    private PostgresReplicaSet _servers = null!;

    public enum Variant
    {
        SameContext,
        AmbientScopeAcrossTwoContexts,
        TokenCarriedToANewContext,
    }

    [OneTimeSetUp]
    public async Task StartServers()
    {
        _servers = await ShopServers.StartAsync();
        await _servers.Standby.SetRecoveryMinApplyDelayAsync(ApplyDelay);
    }

    [OneTimeTearDown]
    public async Task StopServers() => await _servers.DisposeAsync();

    [TestCase(Variant.SameContext)]
    [TestCase(Variant.AmbientScopeAcrossTwoContexts)]
    [TestCase(Variant.TokenCarriedToANewContext)]
    public async Task No_read_misses_its_own_write_and_other_reads_stay_on_the_replica(Variant variant)
    {
        using var counters = new ConsistencyCounters();
        await using var cluster = await TestCluster.CreateAsync(_servers);

        var result = await RunLoop(cluster, variant, Iterations);

        TestContext.Out.WriteLine($"{variant}: {result}; primary round trips for positions {counters.Captures} ({(double)counters.Captures / Iterations:0.00} per unit of work), replica position checks {counters.ReplayChecks}");
        Assert.Multiple(() =>
        {
            Assert.That(result.Misses, Is.Zero, "a read did not see its own write");
            Assert.That(result.BystanderReplicaShare, Is.GreaterThanOrEqualTo(0.95), "reads in scopes that did not write should be served by the replica");
            Assert.That(counters.Captures, Is.LessThanOrEqualTo(Iterations), "at most one primary round trip per unit of work");
        });
    }

    [Test]
    public async Task With_the_feature_off_the_same_loop_misses()
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options => options.ReadYourWrites = ReadYourWritesMode.Off);

        var result = await RunLoop(cluster, Variant.SameContext, 100);

        TestContext.Out.WriteLine($"feature off: {result}");
        Assert.That(result.Misses, Is.GreaterThan(50), "the loop must be able to fail: with a 500 ms apply delay most reads should miss");
    }

    [Test]
    public async Task Reads_after_a_write_return_to_the_replica_once_it_has_replayed_the_write()
    {
        await using var cluster = await TestCluster.CreateAsync(_servers);
        await using var context = cluster.NewContext();
        var name = $"catch-up-{Guid.NewGuid():N}";
        context.People.Add(new Person { Name = name });
        await context.SaveChangesAsync();
        var clock = Stopwatch.StartNew();

        TimeSpan? backOnReplica = null;
        var primaryReads = 0;
        while (clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            var row = await context.People.Where(p => p.Name == name).Select(p => new { Side = new ServerSide(ShopContext.ServerPort(), ShopContext.InRecovery()) }).SingleAsync();
            if (row.Side.InRecovery)
            {
                backOnReplica = clock.Elapsed;
                break;
            }

            primaryReads++;
            await Task.Delay(10);
        }

        TestContext.Out.WriteLine($"back on the replica {backOnReplica?.TotalMilliseconds:0} ms after the write (apply delay {ApplyDelay.TotalMilliseconds:0} ms), after {primaryReads} reads on the primary");
        Assert.That(backOnReplica, Is.Not.Null.And.GreaterThanOrEqualTo(ApplyDelay - TimeSpan.FromMilliseconds(50)).And.LessThan(ApplyDelay + TimeSpan.FromMilliseconds(400)));
    }

    [Test]
    public async Task A_bounded_wait_keeps_the_read_on_the_replica()
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options => options.ReadYourWritesMaxWait = TimeSpan.FromSeconds(2));
        await using var context = cluster.NewContext();
        var name = $"wait-{Guid.NewGuid():N}";
        context.People.Add(new Person { Name = name });
        await context.SaveChangesAsync();
        var clock = Stopwatch.StartNew();

        var row = await context.People.Where(p => p.Name == name).Select(p => new ServerSide(ShopContext.ServerPort(), ShopContext.InRecovery())).SingleAsync();

        TestContext.Out.WriteLine($"the read waited {clock.ElapsedMilliseconds} ms for the replica");
        Assert.That(row.InRecovery, Is.True, "the read should have waited for the replica instead of using the primary");
        Assert.That(clock.Elapsed, Is.GreaterThan(ApplyDelay - TimeSpan.FromMilliseconds(100)));
    }

    [Test]
    public async Task Time_window_mode_keeps_reads_on_the_primary_for_the_window()
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options =>
        {
            options.ReadYourWrites = ReadYourWritesMode.TimeWindow;
            options.ReadYourWritesWindow = TimeSpan.FromMilliseconds(800);
        });
        await using var context = cluster.NewContext();
        context.People.Add(new Person { Name = $"window-{Guid.NewGuid():N}" });
        await context.SaveChangesAsync();

        var during = await context.WhereAmI().SingleAsync();
        await Task.Delay(TimeSpan.FromMilliseconds(1000));
        var after = await context.WhereAmI().SingleAsync();

        Assert.That(during.Port, Is.EqualTo(_servers.Primary.Port));
        Assert.That(after.Port, Is.EqualTo(_servers.Standby.Port));
    }

    [Test]
    public async Task A_malformed_token_is_rejected_with_a_clear_error()
    {
        await using var cluster = await TestCluster.CreateAsync(_servers);
        using var scope = EfReplicaScope.BeginConsistency("not-a-token");
        await using var context = cluster.NewContext();

        var error = Assert.ThrowsAsync<EfReplicaConsistencyTokenException>(() => context.WhereAmI().SingleAsync());

        Assert.That(error!.Message, Does.Contain("consistency token").And.Contain("not a consistency token"));
    }

    [Test]
    public async Task A_foreign_token_is_rejected_or_ignored_by_configuration([Values] InvalidTokenHandling handling)
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options => options.InvalidTokenHandling = handling);
        var foreign = EfReplicaInterceptor.Consistency.ConsistencyToken.Format(systemIdentifier: 42, lsn: 1);
        using var scope = EfReplicaScope.BeginConsistency(foreign);
        await using var context = cluster.NewContext();

        if (handling == InvalidTokenHandling.Throw)
        {
            var error = Assert.ThrowsAsync<EfReplicaConsistencyTokenException>(() => context.WhereAmI().SingleAsync());
            Assert.That(error!.Message, Does.Contain("another database cluster"));
        }
        else
        {
            var side = await context.WhereAmI().SingleAsync();
            Assert.That(side.InRecovery, Is.True, "an ignored token leaves reads on the replica");
            Assert.That(cluster.Recorder.AllEvents.Select(e => e.EventId), Does.Contain(1003));
        }
    }

    [TestCase(InvalidTokenHandling.Throw, InvalidTokenHandling.Ignore)]
    [TestCase(InvalidTokenHandling.Ignore, InvalidTokenHandling.Throw)]
    public async Task A_scope_can_decide_itself_what_a_bad_token_does(InvalidTokenHandling cluster, InvalidTokenHandling scopeHandling)
    {
        await using var testCluster = await TestCluster.CreateAsync(_servers, options => options.InvalidTokenHandling = cluster);
        using var scope = EfReplicaScope.BeginConsistency("not-a-token", scopeHandling);
        await using var context = testCluster.NewContext();

        if (scopeHandling == InvalidTokenHandling.Throw)
        {
            Assert.ThrowsAsync<EfReplicaConsistencyTokenException>(() => context.WhereAmI().SingleAsync());
        }
        else
        {
            var side = await context.WhereAmI().SingleAsync();
            Assert.That(side.InRecovery, Is.True, "the scope ignores its token whatever the cluster says");
            // With monotonic reads the token carries what the scope saw: a valid token of this cluster, never the bad one.
            Assert.That(await scope.GetTokenAsync(), Is.Null.Or.StartsWith("efr1.").And.Not.EqualTo("not-a-token"), "and hands on only what it saw");
        }
    }

    [Test]
    public async Task A_token_from_the_future_cannot_pin_reads_to_the_primary_forever()
    {
        await using var cluster = await TestCluster.CreateAsync(_servers);
        var systemIdentifier = unchecked((ulong)await _servers.Primary.ScalarAsync<long>("SELECT system_identifier FROM pg_control_system()"));
        var forged = EfReplicaInterceptor.Consistency.ConsistencyToken.Format(systemIdentifier, lsn: ulong.MaxValue / 2);
        using var scope = EfReplicaScope.BeginConsistency(forged);
        var clock = Stopwatch.StartNew();

        ServerSide side;
        do
        {
            await using var context = cluster.NewContext();
            side = await context.WhereAmI().SingleAsync();
        }
        while (!side.InRecovery && clock.Elapsed < TimeSpan.FromSeconds(5));

        Assert.That(side.InRecovery, Is.True, "the forged position should have been lowered to the primary's current one");
        Assert.That(cluster.Recorder.AllEvents.Select(e => e.EventId), Does.Contain(1004));
    }

    private static async Task<LoopResult> RunLoop(TestCluster cluster, Variant variant, int iterations)
    {
        int misses = 0, ownReadsOnReplica = 0, bystanderOnReplica = 0;
        for (var i = 0; i < iterations; i++)
        {
            var name = $"ryw-{variant}-{i}-{Guid.NewGuid():N}";
            var seen = variant switch
            {
                Variant.SameContext => await SameContext(cluster, name),
                Variant.AmbientScopeAcrossTwoContexts => await AmbientScope(cluster, name),
                _ => await CarriedToken(cluster, name),
            };
            if (seen is null)
            {
                misses++;
            }
            else if (seen.InRecovery)
            {
                ownReadsOnReplica++;
            }

            // A scope that wrote nothing: its read belongs on the replica.
            await using var bystander = cluster.NewContext();
            if ((await bystander.WhereAmI().SingleAsync()).InRecovery)
            {
                bystanderOnReplica++;
            }
        }

        return new LoopResult(iterations, misses, ownReadsOnReplica, (double)bystanderOnReplica / iterations);
    }

    private static Task<ServerSide?> Find(ShopContext context, string name)
        => context.People.Where(p => p.Name == name).Select(p => new ServerSide(ShopContext.ServerPort(), ShopContext.InRecovery())).SingleOrDefaultAsync();

    private static async Task<ServerSide?> SameContext(TestCluster cluster, string name)
    {
        await using var context = cluster.NewContext();
        context.People.Add(new Person { Name = name });
        await context.SaveChangesAsync();
        return await Find(context, name);
    }

    private static async Task<ServerSide?> AmbientScope(TestCluster cluster, string name)
    {
        using var scope = EfReplicaScope.BeginConsistency();
        await using (var writer = cluster.NewContext())
        {
            writer.People.Add(new Person { Name = name });
            await writer.SaveChangesAsync();
        }

        await using var reader = cluster.NewContext();
        return await Find(reader, name);
    }

    private static async Task<ServerSide?> CarriedToken(TestCluster cluster, string name)
    {
        string? token;
        using (var scope = EfReplicaScope.BeginConsistency())
        {
            await using var writer = cluster.NewContext();
            writer.People.Add(new Person { Name = name });
            await writer.SaveChangesAsync();
            token = await scope.GetTokenAsync();
        }

        Assert.That(token, Has.Length.EqualTo(27));

        // The next request: a fresh async flow that knows only the token.
        Task<ServerSide?> nextRequest;
        using (ExecutionContext.SuppressFlow())
        {
            nextRequest = Task.Run(async () =>
            {
                Assert.That(EfReplicaScope.CurrentConsistency, Is.Null);
                using var scope = EfReplicaScope.BeginConsistency(token);
                await using var reader = cluster.NewContext();
                return await Find(reader, name);
            });
        }

        return await nextRequest;
    }

    private sealed record LoopResult(int Iterations, int Misses, int OwnReadsOnReplica, double BystanderReplicaShare)
    {
        public override string ToString()
            => $"{Iterations} write-then-read iterations, {Misses} misses, {OwnReadsOnReplica} own reads served by the replica, bystander reads on the replica {BystanderReplicaShare:P1}";
    }

    private sealed class ConsistencyCounters : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly ConcurrentDictionary<string, long> _counts = new();

        public ConsistencyCounters()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == EfReplicaDiagnostics.MeterName && instrument.Name.StartsWith("efreplica.consistency.", StringComparison.Ordinal))
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) => _counts.AddOrUpdate(instrument.Name, value, (_, old) => old + value));
            _listener.Start();
        }

        public long Captures => _counts.GetValueOrDefault(EfReplicaDiagnostics.PositionCapturesCounterName);

        public long ReplayChecks => _counts.GetValueOrDefault(EfReplicaDiagnostics.ReplayChecksCounterName);

        public void Dispose() => _listener.Dispose();
    }
}
