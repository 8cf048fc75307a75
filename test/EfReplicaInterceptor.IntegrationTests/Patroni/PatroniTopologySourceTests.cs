using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Health;
using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using EfReplicaInterceptor.Topology;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Patroni;

/// <summary>
/// <see cref="PatroniTopologySource"/> against a real Patroni 3 cluster (etcd and three PostgreSQL members on loopback),
/// configured as a Patroni user would: <c>Primary</c> the multi-host string over every member
/// (<c>Target Session Attributes=primary</c>), <c>Topology:Patroni:Endpoints</c> the members' REST API addresses, no
/// <c>Replicas</c>. Each scenario runs under four readers and a writer with read-backs, judged by the servers
/// (<c>inet_server_port()</c>, <c>pg_is_in_recovery()</c>); "within two probe intervals" is counted in the source's polls
/// (one per <c>HealthCheckInterval</c>) started after Patroni showed the change. One cluster for the fixture, the scenarios
/// in order on it. Skipped when Patroni is missing, failed on CI (see <see cref="PatroniPrograms"/>).
/// </summary>
[NonParallelizable]
public sealed class PatroniTopologySourceTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(500);

    // The members the library's Primary (multi-host) string was built over.
    private HashSet<string> _inPrimaryString = [];
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    private PatroniCluster _patroni = null!;
    private RoutingRecorder _recorder = null!;
    private Microsoft.Extensions.Logging.ILoggerFactory _loggerFactory = null!;
    private EfReplicaCluster _cluster = null!;
    private string[] _endpoints = [];

    [OneTimeSetUp]
    public async Task StartCluster()
    {
        PatroniRequirement.EnsureInstalled();

        _patroni = await PatroniCluster.StartAsync(members: 3);
        var state = await _patroni.WaitForHealthyAsync();
        await Sql(_patroni.Member(state.Leader!.Name), ShopContext.Schema);

        // The replicas' REST APIs first: the one the source asks first is a replica's, so stopping it shows the next one asked.
        _endpoints = [.. state.Members.OrderBy(member => member.IsLeader).Select(member => _patroni.Member(member.Name).RestApiUrl.ToString())];
        _recorder = new RoutingRecorder();
        _loggerFactory = _recorder.CreateFactory();
        _cluster = await CreateLibraryAsync(_endpoints);
        await Until(() => _cluster.ReplicaNames.Count == 3);
    }

    [OneTimeTearDown]
    public async Task StopCluster()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }

        _loggerFactory?.Dispose();
        _recorder?.Dispose();
        if (_patroni is not null)
        {
            await _patroni.DisposeAsync();
        }
    }

    [Test, Order(1)]
    public async Task Reads_go_to_the_running_replicas_and_writes_to_the_leader()
    {
        var state = await _patroni.WaitForHealthyAsync();
        var leader = _patroni.Member(state.Leader!.Name);
        var replicas = state.Members.Where(member => member.IsReplica).Select(member => _patroni.Member(member.Name).Port).ToArray();

        var run = Workload.Start(_cluster, Polls);
        await Until(() => run.Reads.Count >= 400 && run.Writes.Count >= 20);
        await run.StopAsync();

        var byPort = run.Reads.GroupBy(read => read.Side.Port).ToDictionary(group => group.Key, group => group.Count());
        Report($"steady: {run.Reads.Count} reads ({Ports(byPort)}), {run.Writes.Count} writes on ports {string.Join(", ", run.Writes.Distinct())}; "
            + $"leader {leader.Name} on {leader.Port}, replicas on {string.Join(", ", replicas)}");
        Assert.Multiple(() =>
        {
            Assert.That(_cluster.ReplicaNames, Is.EquivalentTo(state.Members.Select(member => member.Name)), "every running member is watched, the leader too (kept out of rotation)");
            Assert.That(run.Failed, Is.Empty, "no read or write fails");
            Assert.That(run.Reads.Select(read => read.Side.InRecovery), Is.All.True, "reads run on standbys only");
            Assert.That(byPort.Keys, Is.EquivalentTo(replicas), "both running replicas get reads, the leader none");
            Assert.That(run.Writes, Is.All.EqualTo(new ServerSide(leader.Port, InRecovery: false)), "writes run on the leader");
            Assert.That(run.Misses, Is.Zero, "read-backs see their write");
        });
    }

    [Test, Order(2)]
    public async Task A_member_tagged_noloadbalance_gets_no_reads_and_gets_them_again_once_untagged()
    {
        var state = await _patroni.WaitForHealthyAsync();
        var tagged = _patroni.Member(state.Members.Last(member => member.IsReplica).Name);
        var run = Workload.Start(_cluster, Polls);
        try
        {
            await Until(() => run.Reads.Any(read => read.Side.Port == tagged.Port));

            await _patroni.SetNoLoadBalanceAsync(tagged.Name, true);
            var (shownAt, pollsShown) = (run.Clock.Elapsed, Polls());
            await Until(() => !_cluster.ReplicaNames.Contains(tagged.Name));
            var (removedAt, pollsRemoved) = (run.Clock.Elapsed, Polls());
            var readsAtRemoval = run.Reads.Count;
            await Until(() => run.Reads.Count >= readsAtRemoval + 300);
            var lastRead = run.Reads.Where(read => read.Side.Port == tagged.Port).Max(read => read.Ended);
            var lateReads = run.Reads.Count(read => read.Started > removedAt && read.Side.Port == tagged.Port);

            await _patroni.SetNoLoadBalanceAsync(tagged.Name, false);
            var (untaggedAt, pollsUntagged) = (run.Clock.Elapsed, Polls());
            await Until(() => run.Reads.Any(read => read.Started > untaggedAt && read.Side.Port == tagged.Port));
            var firstBack = run.Reads.Where(read => read.Started > untaggedAt && read.Side.Port == tagged.Port).MinBy(read => read.Ended)!;
            await run.StopAsync();

            Report($"noloadbalance on {tagged.Name}: left the set {Ms(removedAt - shownAt)} and {pollsRemoved - pollsShown} polls after Patroni showed the tag, "
                + $"last read there {Ms(lastRead - shownAt)} after it; {lateReads} reads started there after the removal. Untagged: first read "
                + $"{Ms(firstBack.Ended - untaggedAt)} and {firstBack.Polls - pollsUntagged} polls after Patroni showed it. {run.Summary()}");
            Assert.Multiple(() =>
            {
                Assert.That(pollsRemoved - pollsShown, Is.LessThanOrEqualTo(2), "the tagged member leaves within two polls of Patroni showing the tag");
                Assert.That(lateReads, Is.Zero, "no read starts on the tagged member once it left");
                Assert.That(firstBack.Polls - pollsUntagged, Is.LessThanOrEqualTo(2), "the untagged member takes reads within two polls");
                AssertClean(run);
            });
        }
        finally
        {
            await run.StopAsync();
        }
    }

    [Test, Order(3)]
    public async Task A_fourth_member_gets_reads_with_no_configuration_change()
    {
        var run = Workload.Start(_cluster, Polls);
        try
        {
            await Until(() => run.Reads.Count >= 50);
            var added = await _patroni.AddMemberAsync();
            var (streamingAt, pollsStreaming) = (run.Clock.Elapsed, Polls());
            await Until(() => run.Reads.Any(read => read.Side.Port == added.Port));
            var first = run.Reads.Where(read => read.Side.Port == added.Port).MinBy(read => read.Ended)!;
            var readsNow = run.Reads.Count;
            await Until(() => run.Reads.Count >= readsNow + 300);
            await run.StopAsync();

            var after = run.Reads.Where(read => read.Started > first.Ended).GroupBy(read => read.Side.Port).ToDictionary(group => group.Key, group => group.Count());
            Report($"added {added.Name} (port {added.Port}): first read {Ms(first.Ended - streamingAt)} and {first.Polls - pollsStreaming} polls after Patroni "
                + $"reported it streaming; reads after: {Ports(after)}. {run.Summary()}");
            Assert.Multiple(() =>
            {
                Assert.That(_cluster.ReplicaNames, Does.Contain(added.Name));
                Assert.That(first.Polls - pollsStreaming, Is.LessThanOrEqualTo(2), "the added member takes reads within two polls of Patroni reporting it");
                Assert.That(after.Keys, Has.Count.EqualTo(3), "three replicas share the reads");
                Assert.That(_recorder.AllEvents.Count(e => e.EventId == EfReplicaEventId.ReplicaJoinedTopology && e.Message.Contains(added.Name, StringComparison.Ordinal)), Is.EqualTo(1));
                AssertClean(run);
            });
        }
        finally
        {
            await run.StopAsync();
        }
    }

    /// <summary>
    /// The member whose REST API the source asks first is stopped (PostgreSQL and REST API alike): the source asks the next
    /// address and follows. A second application that lists only that member's REST API keeps its last known topology
    /// (event 2107) and its reads go on; it reads Patroni again once the member is back (event 2108).
    /// </summary>
    [Test, Order(4)]
    public async Task A_stopped_member_leaves_at_once_and_is_back_within_two_polls_and_a_down_rest_api_is_passed_over()
    {
        var stopped = _patroni.Member(Name(_endpoints[0]));
        var state = await _patroni.WaitForHealthyAsync();
        Assert.That(state.Member(stopped.Name)!.IsReplica, Is.True, "the first listed REST API is a replica's");

        await using var alone = await CreateLibraryAsync([_endpoints[0]]);
        await Until(() => alone.ReplicaNames.Count == _cluster.ReplicaNames.Count);
        var aloneNames = alone.ReplicaNames.ToArray();
        var failedBefore = Events(EfReplicaEventId.TopologySourceFailed);
        var run = Workload.Start(_cluster, Polls);
        var aloneRun = Workload.Start(alone, () => ((PatroniTopologySource)alone.TopologySource).Polls, readers: 2, writers: 0);
        try
        {
            await Until(() => run.Reads.Any(read => read.Side.Port == stopped.Port) && aloneRun.Reads.Count > 50);
            var stopping = run.Clock.Elapsed;
            await _patroni.StopMemberAsync(stopped.Name);
            var stoppedAt = run.Clock.Elapsed;
            await Until(() => !_cluster.ReplicaNames.Contains(stopped.Name));
            var leftAt = run.Clock.Elapsed;
            await Until(() => Events(EfReplicaEventId.TopologySourceFailed) > failedBefore); // the one-endpoint application
            var aloneReads = aloneRun.Reads.Count;
            await Until(() => aloneRun.Reads.Count >= aloneReads + 200 && run.Reads.Count(read => read.Started > leftAt) >= 200);
            var aloneDuringOutage = alone.ReplicaNames.ToArray();
            var lastOnStopped = run.Reads.Where(read => read.Side.Port == stopped.Port).Max(read => read.Ended);

            var restarting = run.Clock.Elapsed;
            await _patroni.StartMemberAsync(stopped.Name);
            var (answersAt, pollsAnswers) = (run.Clock.Elapsed, Polls());
            await Until(() => run.Reads.Any(read => read.Started > answersAt && read.Side.Port == stopped.Port));
            var back = run.Reads.Where(read => read.Started > answersAt && read.Side.Port == stopped.Port).MinBy(read => read.Ended)!;
            await Until(() => Events(EfReplicaEventId.TopologySourceRecovered) > 0);
            await run.StopAsync();
            await aloneRun.StopAsync();

            Report($"stopped {stopped.Name} (its REST API asked first): stop took {Ms(stoppedAt - stopping)}, out of the set {Ms(leftAt - stoppedAt)} after the stop "
                + $"returned, last read there {Ms(lastOnStopped - stopping)} after the stop began; started and streaming again: first read {Ms(back.Ended - answersAt)} "
                + $"and {back.Polls - pollsAnswers} polls after. {run.Summary()} One-endpoint application: replicas during the outage "
                + $"[{string.Join(", ", aloneDuringOutage)}] (before [{string.Join(", ", aloneNames)}]); {aloneRun.Summary()}");
            Assert.Multiple(() =>
            {
                Assert.That(run.Reads.Count(read => read.Started > stoppedAt && read.Started < restarting && read.Side.Port == stopped.Port), Is.Zero, "no read on a stopped member");
                Assert.That(back.Polls - pollsAnswers, Is.LessThanOrEqualTo(2), "the restarted member takes reads within two polls of streaming again");
                AssertClean(run);
                Assert.That(Events(EfReplicaEventId.TopologySourceFailed), Is.EqualTo(failedBefore + 1),
                    "the application with every endpoint listed never lost Patroni (the next address was asked); the one-endpoint one reported its loss once");
                Assert.That(aloneDuringOutage, Is.EqualTo(aloneNames), "with no REST API answering, the last known topology stays");
                Assert.That(aloneRun.Failed, Is.Empty, "reads of the one-endpoint application go on");
                Assert.That(aloneRun.Reads.Select(read => read.Side.InRecovery), Is.All.True);
            });
        }
        finally
        {
            await run.StopAsync();
            await aloneRun.StopAsync();
        }
    }

    [Test, Order(5)]
    public async Task A_switchover_fails_no_read_and_the_old_leader_takes_reads_as_a_replica()
    {
        var check = new EfReplicaHealthCheck(_cluster);
        await _patroni.WaitForHealthyAsync();
        await Until(() => Status(check) == HealthStatus.Healthy);
        var before = await check.CheckHealthAsync(new HealthCheckContext());
        var oldLeader = _patroni.Member((await _patroni.GetClusterAsync()).Leader!.Name);

        var run = Workload.Start(_cluster, Polls);
        try
        {
            await Until(() => run.Reads.Count >= 100 && run.Writes.Count >= 10);
            var switching = run.Clock.Elapsed;
            // The candidate is a member the library's Primary string lists: a member added later (the fourth) is not in it, and
            // a leader the primary's connection string cannot reach takes no writes (docs/known-limits.md: list every member that can lead).
            var state = await _patroni.GetClusterAsync();
            var candidate = state.Members.First(member => member.IsReplica && member.IsRunning && _inPrimaryString.Contains(member.Name)).Name;
            var newLeader = await _patroni.SwitchoverAsync(candidate);
            var writableAt = run.Clock.Elapsed;
            await _patroni.WaitForStreamingAsync(oldLeader.Name);
            var (streamingAt, pollsStreaming) = (run.Clock.Elapsed, Polls());
            await Until(() => run.Reads.Any(read => read.Started > streamingAt && read.Side.Port == oldLeader.Port));
            var first = run.Reads.Where(read => read.Started > streamingAt && read.Side.Port == oldLeader.Port).MinBy(read => read.Ended)!;
            await Until(() => Status(check) == HealthStatus.Healthy);
            var healthyAt = run.Clock.Elapsed;
            var after = await check.CheckHealthAsync(new HealthCheckContext());
            var readsNow = run.Reads.Count;
            var writesNow = run.Writes.Count;
            await Until(() => run.Reads.Count >= readsNow + 300 && run.Writes.Count >= writesNow + 10);
            await run.StopAsync();

            // Past the window the assertions below allow (a read that chose the candidate while it was still a standby in
            // rotation runs on it as it is promoted, for at most two probe intervals): no read on the new leader.
            var onNewLeader = run.Reads.Count(read => read.Started > writableAt + (2 * Interval) && read.Side.Port == newLeader.Port);
            var onPrimary = run.Reads.Where(read => !read.Side.InRecovery).ToList();
            if (onPrimary.Count > 0)
            {
                Report($"reads on a primary: {onPrimary.Count}, ports {string.Join(", ", onPrimary.Select(read => read.Side.Port).Distinct())}, "
                    + $"started {Ms(onPrimary.Min(read => read.Started))} to {Ms(onPrimary.Max(read => read.Started))}");
            }

            var writesAfter = run.Writes.Skip(writesNow).Distinct().ToArray();
            Report($"switchover {oldLeader.Name} -> {newLeader.Name}: new leader writable {Ms(writableAt - switching)} after it began, old leader streaming "
                + $"{Ms(streamingAt - writableAt)} later, its first read {Ms(first.Ended - streamingAt)} and {first.Polls - pollsStreaming} polls after that; "
                + $"Healthy again {Ms(healthyAt - writableAt)} after the new leader was writable; reads on the new leader after it was writable: {onNewLeader}; "
                + $"on the workload's clock: switchover began {Ms(switching)}, new leader writable {Ms(writableAt)}. {run.Summary()}");
            Assert.Multiple(() =>
            {
                Assert.That(before.Status, Is.EqualTo(HealthStatus.Healthy), before.Description);
                Assert.That(after.Status, Is.EqualTo(HealthStatus.Healthy), after.Description);
                Assert.That(first.Polls - pollsStreaming, Is.LessThanOrEqualTo(2), "the old leader takes reads within two polls of streaming");
                Assert.That(onNewLeader, Is.Zero, "the new leader gets no reads two probe intervals after it is writable");
                Assert.That(writesAfter, Is.EqualTo(new[] { new ServerSide(newLeader.Port, InRecovery: false) }), "writes go to the new leader");
                Assert.That(after.Data[$"replica:{newLeader.Name}"], Does.StartWith("the primary"));
                Assert.That(after.Data[$"replica:{oldLeader.Name}"], Does.Not.StartWith("the primary"));
                Assert.That(run.FailedReads, Is.Empty, "no read fails in a switchover");
                // A read the selector sent to the candidate just before Patroni promoted it runs on the new primary (the
                // freshest server: no stale read); the library's probe or Patroni's next report takes the candidate out of
                // rotation, so that happens for at most about one probe interval (two allowed: a margin for the machine).
                Assert.That(onPrimary.Select(read => read.Side.Port).Distinct(), Is.SubsetOf(new[] { newLeader.Port }), "no read on the old leader while it led");
                Assert.That(onPrimary.Count == 0 ? TimeSpan.Zero : onPrimary.Max(read => read.Started) - onPrimary.Min(read => read.Started), Is.LessThanOrEqualTo(2 * Interval),
                    "reads reach the promoted candidate for one probe interval at most");
                Assert.That(run.Misses, Is.Zero, "read-backs see their write");
                Assert.That(run.UntypedWrites, Is.Empty, "every failed write is typed");
            });
        }
        finally
        {
            await run.StopAsync();
        }
    }

    /// <summary>Polls every 20 ms, up to <see cref="Bound"/>; on a timeout fails with what the library and Patroni say then.</summary>
    private async Task Until(Func<bool> condition, [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(condition))] string what = "")
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > Bound)
            {
                var health = await new EfReplicaHealthCheck(_cluster).CheckHealthAsync(new HealthCheckContext());
                var patroni = await _patroni.GetClusterAsync();
                Assert.Fail($"Not within {Bound.TotalSeconds} s: {what}. Health {health.Status}: {string.Join("; ", health.Data.Select(pair => $"{pair.Key}={pair.Value}"))}. "
                    + $"Patroni: {patroni.Json}. Workload: {Workload.Latest?.Summary()}. Events: {string.Join(" | ", _recorder.AllEvents.Where(e => e.EventId is >= 2000 and < 2200 && e.EventId != 2008).TakeLast(15).Select(e => $"{e.EventId} {e.Message}"))}");
            }

            await Task.Delay(20);
        }
    }

    private static HealthStatus Status(EfReplicaHealthCheck check) => check.CheckHealthAsync(new HealthCheckContext()).GetAwaiter().GetResult().Status;

    private static void AssertClean(Workload run)
    {
        Assert.That(run.Failed, Is.Empty, "no read or write fails");
        Assert.That(run.Reads.Select(read => read.Side.InRecovery), Is.All.True, "reads run on standbys only");
        Assert.That(run.Misses, Is.Zero, "read-backs see their write");
    }

    /// <summary>The library over the Patroni cluster as a user configures it: the multi-host primary and Patroni's REST APIs.</summary>
    private async Task<EfReplicaCluster> CreateLibraryAsync(string[] endpoints)
    {
        _inPrimaryString = [.. _patroni.Members.Select(member => member.Name)];
        var options = new EfReplicaOptions
        {
            Primary = TestCluster.WithPool(_patroni.MultiHostConnectionString, TestCluster.DefaultMaxPoolSize),
            HealthCheckInterval = Interval,
        };
        // As docs/operations-and-ha.md advises: the read deadline covers a switchover, so that a read-back whose write the
        // departing leader took waits for the new one (the default, interval + probe timeout, did not on a loaded machine:
        // one read-back failed typed 5.7 s into a run while three other builds shared the two cores).
        options.Failover.ReadDeadline = TimeSpan.FromSeconds(10);
        options.Topology.Patroni.Endpoints = [.. endpoints];
        var cluster = EfReplicaCluster.Create(options, _loggerFactory, TestCluster.MapTypes);
        await cluster.RefreshHealthAsync();
        return cluster;
    }

    /// <summary>The member whose REST API is at <paramref name="endpoint"/>.</summary>
    private string Name(string endpoint) => _patroni.Members.Single(member => member.RestApiUrl.ToString() == endpoint).Name;

    private long Polls() => ((PatroniTopologySource)_cluster.TopologySource).Polls;

    private int Events(int eventId) => _recorder.AllEvents.Count(e => e.EventId == eventId);

    private static async Task Sql(PatroniMember member, string sql)
    {
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(member.ConnectionString) { Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static string Ports(Dictionary<int, int> byPort) => string.Join(", ", byPort.OrderBy(pair => pair.Key).Select(pair => $"port {pair.Key}: {pair.Value}"));

    private static string Ms(TimeSpan elapsed) => string.Create(CultureInfo.InvariantCulture, $"{elapsed.TotalMilliseconds:0} ms");

    private static void Report(string line) => TestContext.Progress.WriteLine("patroni source: " + line);

    private sealed record Read(TimeSpan Started, TimeSpan Ended, ServerSide Side, long Polls);

    /// <summary>Readers and writers with read-backs on one library instance, recording where each read and write ran (asked of the server).</summary>
    private sealed class Workload
    {
        private readonly EfReplicaCluster _cluster;
        private readonly Func<long> _polls;
        private readonly CancellationTokenSource _stop = new();
        private Task[] _tasks = [];
        private int _misses;

        private Workload(EfReplicaCluster cluster, Func<long> polls) => (_cluster, _polls) = (cluster, polls);

        public Stopwatch Clock { get; } = Stopwatch.StartNew();

        public ConcurrentQueue<Read> Reads { get; } = new();

        /// <summary>Where each acknowledged write ran: the row's <c>written_on_port</c> and <c>written_in_recovery</c>, read back.</summary>
        public ConcurrentQueue<ServerSide> Writes { get; } = new();

        public ConcurrentQueue<string> FailedReads { get; } = new();

        public ConcurrentQueue<string> UntypedWrites { get; } = new();

        public ConcurrentQueue<string> TypedWrites { get; } = new();

        public IEnumerable<string> Failed => FailedReads.Concat(UntypedWrites).Concat(TypedWrites);

        public int Misses => Volatile.Read(ref _misses);

        /// <summary>The workload started last: a timed-out wait says what it saw (counts and first failures).</summary>
        public static Workload? Latest { get; private set; }

        public static Workload Start(EfReplicaCluster cluster, Func<long> polls, int readers = 4, int writers = 1)
        {
            var run = new Workload(cluster, polls);
            Latest = run;
            run._tasks = [.. Enumerable.Range(0, readers).Select(_ => Task.Run(run.ReadAsync)), .. Enumerable.Range(0, writers).Select(_ => Task.Run(run.WriteAsync))];
            return run;
        }

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_tasks);
        }

        public string Summary()
            => $"{Reads.Count} reads, {FailedReads.Count} failed; {Writes.Count} writes, {TypedWrites.Count} failed typed, {UntypedWrites.Count} untyped; {Misses} read-back misses"
               + string.Concat(FailedReads.Concat(UntypedWrites).Take(5).Concat(TypedWrites.Take(1)).Concat(TypedWrites.Skip(1).TakeLast(1)).Select(failure => "; " + failure));

        private ShopContext NewContext()
        {
            var builder = new DbContextOptionsBuilder<ShopContext>();
            builder.UseNpgsql(_cluster.PrimaryDataSource, npgsql => npgsql.MapEnum<Mood>("mood")).UseEfReplicaRouting(_cluster);
            return new ShopContext(builder.Options);
        }

        private async Task ReadAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                var (started, polls) = (Clock.Elapsed, _polls());
                try
                {
                    await using var context = NewContext();
                    var side = await context.WhereAmI().SingleAsync(CancellationToken.None);
                    Reads.Enqueue(new Read(started, Clock.Elapsed, side, polls));
                }
                catch (Exception exception)
                {
                    FailedReads.Enqueue($"read at {started.TotalMilliseconds:0} ms: {Describe(exception)}");
                }
            }
        }

        private async Task WriteAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                var name = "w-" + Guid.NewGuid().ToString("N");
                await using var context = NewContext();
                try
                {
                    context.People.Add(new Person { Name = name, Mood = Mood.Happy });
                    await context.SaveChangesAsync(CancellationToken.None);
                }
                catch (EfReplicaFailoverException failover)
                {
                    TypedWrites.Enqueue($"write {failover.Outcome} at {Clock.Elapsed.TotalMilliseconds:0} ms");
                    await Task.Delay(20, CancellationToken.None);
                    continue;
                }
                catch (Exception exception)
                {
                    UntypedWrites.Enqueue($"write at {Clock.Elapsed.TotalMilliseconds:0} ms: {Describe(exception)}");
                    await Task.Delay(20, CancellationToken.None);
                    continue;
                }

                try
                {
                    var written = await context.People.AsNoTracking().Where(person => person.Name == name)
                        .Select(person => new ServerSide(person.WrittenOnPort, person.WrittenInRecovery ?? true)).SingleOrDefaultAsync(CancellationToken.None);
                    if (written is null)
                    {
                        Interlocked.Increment(ref _misses);
                    }
                    else
                    {
                        Writes.Enqueue(written);
                    }
                }
                catch (Exception exception)
                {
                    FailedReads.Enqueue($"read-back at {Clock.Elapsed.TotalMilliseconds:0} ms: {Describe(exception)}");
                }
            }
        }

        private static string Describe(Exception exception)
        {
            var parts = new List<string>();
            for (Exception? current = exception; current is not null; current = current.InnerException)
            {
                parts.Add($"{current.GetType().Name}: {current.Message}");
            }

            return string.Join(" -> ", parts);
        }
    }
}
