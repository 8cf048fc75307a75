using System.Diagnostics;
using EfReplicaInterceptor.Health;
using EfReplicaInterceptor.Topology;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace EfReplicaInterceptor.IntegrationTests.Patroni;

/// <summary>
/// Issue 20's scenarios under a real Patroni 3 cluster (etcd and three PostgreSQL members on loopback), with the library configured
/// the way an HA user does: <c>Primary</c> = a multi-host connection string over every member with
/// <c>Target Session Attributes=primary</c>, <c>Replicas</c> = every member. Each scenario runs <see cref="PatroniLoad"/> (4 readers
/// and 2 writers with read-backs, async EF contexts through the library) and is judged from the servers: every read returns
/// <c>inet_server_port()</c>, <c>pg_is_in_recovery()</c> and the newest write of each writer it sees, so a stale read is known for
/// certain; the final primary says which writes exist; the history checker judges read-your-writes and monotonic reads.
/// One cluster for the fixture, the scenarios in order, each leaving it with one leader and two streaming replicas.
/// </summary>
[NonParallelizable]
public sealed partial class PatroniScenarioTests
{
    /// <summary>The library's probe interval in these scenarios.</summary>
    private static readonly TimeSpan ProbeInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>Generous bounds for waits on conditions (a loaded machine), never asserted as timings.</summary>
    private static readonly TimeSpan HealthBound = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan WritesBackBound = TimeSpan.FromSeconds(30);

    /// <summary>The issue's bar is 1 s; asserted with a margin for a machine shared by several builds, the figure is reported.</summary>
    private static readonly TimeSpan WritesBackAssertBound = TimeSpan.FromSeconds(5);

    private PatroniCluster _patroni = null!;
    private long _nextSeq = 1;

    [OneTimeSetUp]
    public async Task StartCluster()
    {
        PatroniRequirement.EnsureInstalled();

        var clock = Stopwatch.StartNew();
        _patroni = await PatroniCluster.StartAsync(members: 3);
        var leader = await _patroni.WaitForLeaderAsync();
        await leader.ExecuteAsync(PatroniLoadContext.Schema);
        await _patroni.WaitForHealthyAsync();
        Report($"cluster up in {clock.Elapsed.TotalSeconds:0.0} s: {await _patroni.GetClusterAsync()}");
    }

    [OneTimeTearDown]
    public async Task StopCluster()
    {
        if (_patroni is not null)
        {
            await _patroni.DisposeAsync();
        }
    }

    [Test, Order(1)]
    public async Task Two_equal_standbys_share_reads_within_ten_percent_while_the_leader_listed_as_a_replica_is_out_of_rotation()
    {
        await using var library = await Library.CreateAsync(_patroni);
        var health = await library.WaitForHealthyAsync(HealthBound);

        // The 4 readers without the writers: while writes run, a scope's monotonic reads and read-your-writes rightly steer its
        // reads to the standby that has replayed more (measured: 976 vs 851 with writers), which is not the balancer's choice.
        var load = PatroniLoad.Start(library.Cluster, _nextSeq, writers: 0);
        await WaitForReadsAsync(load, 3000, TimeSpan.FromSeconds(30));
        await load.StopAsync();

        var leader = await _patroni.WaitForLeaderAsync();
        var report = await Finish(load, leader, library.Options.MaxReplicaLag);
        var standbys = _patroni.Members.Where(member => member.Name != leader.Name).ToList();
        var onStandby = load.ReadRecords.Where(r => !r.ReadBack && r.Result is not null)
            .GroupBy(r => r.Result!.Port).ToDictionary(g => g.Key, g => g.Count());
        var (a, b) = (onStandby.GetValueOrDefault(standbys[0].Port), onStandby.GetValueOrDefault(standbys[1].Port));
        var spread = Math.Abs(a - b) / (double)Math.Max(1, Math.Max(a, b));
        Report($"balancing: leader {leader.Name}; readers' reads on {standbys[0].Name} {a}, on {standbys[1].Name} {b}, on the leader {onStandby.GetValueOrDefault(leader.Port)}: spread {spread:P1}; health before: {health}");
        Report(report.Describe());

        Assert.Multiple(() =>
        {
            Assert.That(a + b, Is.GreaterThan(500), "the readers must have read on the standbys, or the test proves nothing");
            Assert.That(spread, Is.LessThanOrEqualTo(0.10), "two equal standbys share reads within 10 % of each other");
            Assert.That(report.FailedReads, Is.Empty, "no read fails in a cluster that stands still");
            Assert.That(health.Status, Is.EqualTo(HealthStatus.Healthy), $"health with every member listed: {health}");
        });
    }

    [Test, Order(2)]
    public async Task Planned_switchover_fails_no_read_types_every_failed_write_and_keeps_both_session_guarantees()
    {
        await using var library = await Library.CreateAsync(_patroni);
        var healthBefore = await library.WaitForHealthyAsync(HealthBound);
        var load = PatroniLoad.Start(library.Cluster, _nextSeq);
        await using var watch = new PatroniRoleWatch(_patroni.Members, () => load.Now);
        await WaitForReadsAsync(load, 300, TimeSpan.FromSeconds(30));

        var oldLeader = (await _patroni.WaitForLeaderAsync()).Name;
        var switchAt = load.Now;
        var newLeader = await _patroni.SwitchoverAsync();
        var switchedIn = load.Now - switchAt;
        var writableAt = await WaitForAsync(() => watch.FirstWritable(newLeader.Name, switchAt), TimeSpan.FromSeconds(10), "the new leader to answer as the primary");
        await WaitForAsync(() => load.WriteRecords.Any(w => w.Outcome == PatroniWriteOutcome.Succeeded && w.End >= writableAt) ? true : (bool?)null, WritesBackBound, "a write to succeed on the new leader");
        await _patroni.WaitForStreamingAsync(oldLeader);
        var streamingAt = load.Now;
        var oldLeaderPort = _patroni.Member(oldLeader).Port;
        await WaitForAsync(
            () => load.ReadRecords.Any(r => r.Start >= streamingAt && r.Result?.Port == oldLeaderPort) ? true : (bool?)null,
            TimeSpan.FromSeconds(20),
            "a read on the old leader, now a standby",
            required: false);
        var oldLeaderFirstRead = load.ReadRecords.Where(r => r.Start >= streamingAt && r.Result?.Port == oldLeaderPort).Select(r => (TimeSpan?)(r.End - streamingAt)).Min();
        await load.StopAsync();

        var healthAfter = await library.WaitForHealthyAsync(HealthBound);
        var report = await Finish(load, newLeader, library.Options.MaxReplicaLag);
        var writesBack = report.WritesBackAfter(writableAt);
        Report($"switchover {oldLeader} -> {newLeader.Name} in {switchedIn.TotalSeconds:0.00} s (POST to writable); writes back {Ms(writesBack)} after the new leader first answered as the primary; " +
               $"old leader's first read {Ms(oldLeaderFirstRead)} after Patroni reported it streaming; health before: {healthBefore}; after: {healthAfter}");
        Report(report.Describe());
        Report(library.Events());

        Assert.Multiple(() =>
        {
            Assert.That(report.FailedReads.Select(r => r.Error), Is.Empty, "0 reads failed to the caller");
            Assert.That(writesBack, Is.Not.Null.And.LessThan(WritesBackAssertBound), "writes succeed again soon after the new leader is writable (issue's bar: 1 s)");
            AssertWritesTyped(report);
            Assert.That(report.AcknowledgedButLost, Is.Empty, "a planned switchover loses no acknowledged write");
            Assert.That(report.History.ReadYourWritesViolations, Is.Zero, report.History.Describe());
            Assert.That(report.History.MonotonicReadsViolations, Is.Zero, report.History.Describe());
            Assert.That(healthBefore.Status, Is.EqualTo(HealthStatus.Healthy), $"health before: {healthBefore}");
            Assert.That(healthAfter.Status, Is.EqualTo(HealthStatus.Healthy), $"health after: {healthAfter}");
        });
    }

    [Test, Order(3)]
    public async Task A_replica_stopped_and_restarted_fails_no_read_and_is_back_in_rotation_within_two_probe_rounds()
    {
        await using var library = await Library.CreateAsync(_patroni);
        await library.WaitForHealthyAsync(HealthBound);
        var load = PatroniLoad.Start(library.Cluster, _nextSeq);
        await using var watch = new PatroniRoleWatch(_patroni.Members, () => load.Now, () => library.Cluster.Monitor.Rounds);
        await WaitForReadsAsync(load, 300, TimeSpan.FromSeconds(30));

        var leader = await _patroni.WaitForLeaderAsync();
        var replica = _patroni.Members.First(member => member.Name != leader.Name);
        await _patroni.StopMemberAsync(replica.Name);
        var stoppedAt = load.Now;
        await WaitForAsync(() => library.Replica(replica.Name).IsAdmitted ? null : (bool?)true, TimeSpan.FromSeconds(10), $"{replica.Name} to leave the rotation", required: false);
        var startAt = load.Now;

        // Watched from the start, alongside it: StartMemberAsync returns only once Patroni reports the member streaming, often a
        // second or more after it answers and has replayed (and the library has taken it back); looking only then measured
        // the harness's wait (4-6 rounds), not the library (back one round after the watch first saw it caught up).
        var admission = WaitForAsync(
            () => library.Replica(replica.Name).IsAdmitted ? (load.Now, library.Cluster.Monitor.Rounds) : ((TimeSpan, long)?)null,
            TimeSpan.FromSeconds(60),
            $"{replica.Name} back in rotation",
            required: false);
        await _patroni.StartMemberAsync(replica.Name);
        var streamingAt = load.Now;
        var caughtUp = await WaitForAsync(() => watch.FirstCaughtUp(replica.Name, startAt), TimeSpan.FromSeconds(30), $"{replica.Name} to answer as a standby and replay what the leader wrote");
        var answeredAt = watch.FirstStandby(replica.Name, startAt);
        var admitted = await admission;
        var admittedAt = admitted.Item1 == TimeSpan.Zero ? (TimeSpan?)null : admitted.Item1;

        // Admission can precede the watch's own sample that saw it caught up (the watch asks every 50 ms): that counts as 0 rounds.
        var roundsToAdmission = Math.Max(0, admitted.Item2 - caughtUp.Rounds);
        await WaitForAsync(
            () => load.ReadRecords.Any(r => r.Start >= caughtUp.At && r.Result?.Port == replica.Port) ? true : (bool?)null,
            TimeSpan.FromSeconds(10),
            $"a read on {replica.Name}",
            required: false);
        var firstRead = load.ReadRecords.Where(r => r.Start >= caughtUp.At && r.Result?.Port == replica.Port).Select(r => (TimeSpan?)(r.End - caughtUp.At)).Min();
        await load.StopAsync();

        var report = await Finish(load, leader, library.Options.MaxReplicaLag);
        Report($"{replica.Name} stopped at {stoppedAt.TotalSeconds:0.00} s; started at {startAt.TotalSeconds:0.00} s, first answered as a standby at {answeredAt?.TotalSeconds:0.00} s, " +
               $"caught up with the leader at {caughtUp.At.TotalSeconds:0.00} s, streaming (Patroni) at {streamingAt.TotalSeconds:0.00} s; in rotation again at {admittedAt?.TotalSeconds:0.00} s: " +
               $"{Ms(admittedAt - caughtUp.At)} and {roundsToAdmission} probe rounds ({ProbeInterval.TotalMilliseconds:0} ms each) after it answered and had replayed; first read on it {Ms(firstRead)} after that");
        Report(report.Describe());
        Report(library.Events());

        Assert.Multiple(() =>
        {
            Assert.That(report.FailedReads.Select(r => r.Error), Is.Empty, "0 reads failed to the caller");
            Assert.That(admittedAt, Is.Not.Null, $"{replica.Name} must come back into rotation");
            Assert.That(roundsToAdmission, Is.LessThanOrEqualTo(2), "back in rotation within two probe rounds after it answers and has replayed");
            Assert.That(report.History.ReadYourWritesViolations + report.History.MonotonicReadsViolations, Is.Zero, report.History.Describe());
            Assert.That(report.StaleReads, Is.Empty, "no read older than the lag budget plus one probe interval");
        });
    }

    [Test, Order(4)]
    public async Task Unplanned_failover_fails_no_read_types_every_failed_write_and_serves_no_read_older_than_the_lag_budget()
    {
        await using var library = await Library.CreateAsync(_patroni);
        await library.WaitForHealthyAsync(HealthBound);
        var report = await FailOverUnderLoadAsync(library, delayed: null);

        Assert.Multiple(() =>
        {
            Assert.That(report.Report.FailedReads.Select(r => r.Error), Is.Empty, "0 reads failed to the caller: the readers' on the standbys, the read-backs on a standby that has the write or on the new leader (Failover:PrimaryWait covers the ttl)");
            Assert.That(report.WritesBack, Is.Not.Null.And.LessThan(WritesBackAssertBound), "writes succeed again soon after the new leader is writable (issue's bar: 1 s)");
            AssertWritesTyped(report.Report);
            Assert.That(report.Report.History.ReadYourWritesViolations, Is.Zero, report.Report.History.Describe());
            Assert.That(report.Report.History.MonotonicReadsViolations, Is.Zero, report.Report.History.Describe());
            Assert.That(report.Report.StaleReads, Is.Empty, $"0 reads older than the {library.Options.MaxReplicaLag.TotalSeconds:0.#} s lag budget plus one probe interval");
        });
    }

    [Test, Order(5)]
    public async Task Failover_with_one_standby_behind_the_other_serves_no_read_older_than_the_lag_budget()
    {
        var budget = TimeSpan.FromSeconds(2);
        var leader = await _patroni.WaitForLeaderAsync();
        var delayed = _patroni.Members.Last(member => member.Name != leader.Name);

        // Longer than Patroni's ttl (10 s) plus twice the budget: at the promotion the delayed standby still lacks the dead leader's
        // last seconds. Tagged nofailover, so that the other standby is promoted (Patroni sees both received the same WAL and would
        // otherwise pick either) and the delayed one stays behind as a standby of the new leader.
        await _patroni.SetReplayDelayAsync(delayed.Name, TimeSpan.FromSeconds(16));
        ScenarioReport report;
        try
        {
            await PatroniNoFailover.SetAsync(_patroni, delayed, true);
            await using var library = await Library.CreateAsync(_patroni, budget);
            report = await FailOverUnderLoadAsync(library, delayed);
        }
        finally
        {
            // Rewrites the member's configuration without the nofailover tag, too.
            await _patroni.SetReplayDelayAsync(delayed.Name, TimeSpan.Zero);
            await PatroniNoFailover.SetAsync(_patroni, delayed, false);
        }

        Assert.Multiple(() =>
        {
            Assert.That(report.NewLeader, Is.Not.EqualTo(delayed.Name), "the other standby was promoted (precondition)");
            Assert.That(report.Report.StaleReads, Is.Empty, $"0 reads older than the {budget.TotalSeconds:0.#} s lag budget plus one probe interval");
            Assert.That(report.Report.FailedReads.Select(r => r.Error), Is.Empty, "0 reads failed to the caller");
            AssertWritesTyped(report.Report);
            Assert.That(report.Report.History.ReadYourWritesViolations + report.Report.History.MonotonicReadsViolations, Is.Zero, report.Report.History.Describe());
        });
    }

    private static void AssertWritesTyped(PatroniLoadReport report)
    {
        Assert.That(report.Writes.Where(w => w.Outcome == PatroniWriteOutcome.Untyped).Select(w => w.Detail), Is.Empty, "every failed write is typed (EfReplicaFailoverException)");
        Assert.That(report.NotAppliedButPresent, Is.Empty, "a write reported NotApplied is absent from the final primary");
    }

    /// <summary>
    /// Kills the leader (its Patroni and postmaster) under load, waits for the new leader and for writes to succeed on it, keeps the
    /// load for 4 s more (6 s with a delayed standby) (the window where a lagging standby would serve stale reads), then judges against the final primary and
    /// starts the killed member again as a replica.
    /// </summary>
    private async Task<ScenarioReport> FailOverUnderLoadAsync(Library library, PatroniMember? delayed)
    {
        var load = PatroniLoad.Start(library.Cluster, _nextSeq);
        await using var watch = new PatroniRoleWatch(_patroni.Members, () => load.Now);
        await WaitForReadsAsync(load, 300, TimeSpan.FromSeconds(30));
        if (delayed is not null)
        {
            // The library sees the delayed standby behind the budget before the crash (judged from the servers, not asserted here).
            await WaitForAsync(() => library.Replica(delayed.Name).IsAdmitted ? null : (bool?)true, TimeSpan.FromSeconds(15), $"{delayed.Name} to leave the rotation for its lag", required: false);
            Report($"{delayed.Name} replays 16 s late; in rotation before the crash: {library.Replica(delayed.Name).IsAdmitted}");

            // Writes for 6 s before the crash: the delayed standby lacks all of them until 16 s after each, well past the promotion.
            await WaitForAsync(() => load.Now >= TimeSpan.FromSeconds(6) ? true : (bool?)null, TimeSpan.FromSeconds(30), "6 s of load before the crash");
        }

        var killAt = load.Now;
        var killed = await _patroni.KillLeaderAsync();
        var newLeader = await _patroni.WaitForNewLeaderAsync(killed.Name);
        var writableAt = await WaitForAsync(() => watch.FirstWritable(newLeader.Name, killAt), TimeSpan.FromSeconds(10), "the new leader to answer as the primary");
        await WaitForAsync(() => load.WriteRecords.Any(w => w.Outcome == PatroniWriteOutcome.Succeeded && w.End >= writableAt) ? true : (bool?)null, WritesBackBound, "a write to succeed on the new leader");
        var until = writableAt + TimeSpan.FromSeconds(delayed is null ? 4 : 6);
        await WaitForAsync(() => load.Now >= until ? true : (bool?)null, TimeSpan.FromSeconds(30), "the load after the failover");
        await load.StopAsync();
        var healthAfter = await library.HealthAsync();

        var report = await Finish(load, newLeader, library.Options.MaxReplicaLag);
        var writesBack = report.WritesBackAfter(writableAt);
        var lastOkBeforeOutage = report.Writes.Where(w => w.Outcome == PatroniWriteOutcome.Succeeded && w.End <= writableAt).Select(w => (TimeSpan?)w.End).Max();
        Report($"failover: {killed.Name} killed at {killAt.TotalSeconds:0.00} s; {newLeader.Name} writable at {writableAt.TotalSeconds:0.00} s ({(writableAt - killAt).TotalSeconds:0.00} s later)" +
               (delayed is null ? "" : $"; the delayed standby {delayed.Name} {(delayed.Name == newLeader.Name ? "WAS PROMOTED" : "stayed a standby")}") +
               $"; write outage {Ms(writableAt + (writesBack ?? TimeSpan.Zero) - (lastOkBeforeOutage ?? killAt))}; writes back {Ms(writesBack)} after the new leader first answered as the primary; health right after the load: {healthAfter}");
        Report(report.Describe());
        Report(library.Events());

        var started = await _patroni.StartMemberAsync(killed.Name);
        Report($"{killed.Name} back as {started}");
        if (delayed is not null && delayed.Name != newLeader.Name)
        {
            // The delayed standby received the dead leader's WAL as the promoted one did, and at times a little more: then it is
            // past the new timeline's fork point and cannot follow it (its log: "new timeline N forked off current database
            // system timeline before current recovery point"; one CI run timed out here). Patroni 3.0 does not rewind a running
            // replica: rebuild it, as an operator would. The scenario's judgement above is already made.
            try
            {
                await _patroni.WaitForStreamingAsync(delayed.Name, TimeSpan.FromSeconds(60));
            }
            catch (TimeoutException)
            {
                Report($"{delayed.Name} could not follow {newLeader.Name}'s timeline (past its fork point): reinitialized");
                await _patroni.ReinitializeAsync(delayed.Name);
            }
        }

        await _patroni.WaitForHealthyAsync();
        return new ScenarioReport(report, writesBack, newLeader.Name);
    }

    /// <summary>
    /// Judges the load. A read counts as stale when it missed a write acknowledged more than the lag budget plus one probe
    /// interval before it started: the library's documented bound (docs/operations-and-ha.md, ReplicaFreshnessTests). A
    /// replica's lag runs from the first sample of the primary it has not replayed, which can follow the missed write by up to
    /// one sampling interval; a fresh clone's CI once saw reads 5.000-5.007 s behind against a 5 s budget at a failover.
    /// </summary>
    private async Task<PatroniLoadReport> Finish(PatroniLoad load, PatroniMember leader, TimeSpan budget)
    {
        var report = await PatroniLoadReport.CreateAsync(load, leader, budget + ProbeInterval);
        _nextSeq = load.LastSeq + 1;
        return report;
    }

    private static async Task WaitForReadsAsync(PatroniLoad load, int reads, TimeSpan bound)
        => await WaitForAsync(() => load.ReadRecords.Count(r => r.Result is not null) >= reads ? true : (bool?)null, bound, $"{reads} reads");

    /// <summary>Polls <paramref name="probe"/> every 20 ms until it returns a value; fails the test after <paramref name="bound"/> unless not <paramref name="required"/>.</summary>
    private static async Task<T> WaitForAsync<T>(Func<T?> probe, TimeSpan bound, string what, bool required = true)
        where T : struct
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (probe() is { } value)
            {
                return value;
            }

            if (clock.Elapsed > bound)
            {
                if (required)
                {
                    Assert.Fail($"waited {bound.TotalSeconds:0} s for {what}");
                }

                Report($"(did not see {what} within {bound.TotalSeconds:0} s)");
                return default;
            }

            await Task.Delay(20);
        }
    }

    private static string Ms(TimeSpan? value) => value is { } v ? $"{v.TotalMilliseconds:0} ms" : "never";

    private static void Report(string line) => TestContext.Out.WriteLine(line);

    private sealed record ScenarioReport(PatroniLoadReport Report, TimeSpan? WritesBack, string NewLeader);

    /// <summary>The library over the Patroni cluster, configured the way an HA user does, with its events recorded.</summary>
    private sealed class Library : IAsyncDisposable
    {
        private readonly RoutingRecorder _recorder;
        private readonly ILoggerFactory _loggerFactory;
        private readonly EfReplicaHealthCheck _health;

        private Library(EfReplicaCluster cluster, EfReplicaOptions options, RoutingRecorder recorder, ILoggerFactory loggerFactory)
        {
            Cluster = cluster;
            Options = options;
            _recorder = recorder;
            _loggerFactory = loggerFactory;
            _health = new EfReplicaHealthCheck(cluster);
        }

        public EfReplicaCluster Cluster { get; }

        public EfReplicaOptions Options { get; }

        /// <summary><c>Primary</c> = the multi-host string over every member (<c>Target Session Attributes=primary</c>), <c>Replicas</c> = every member.</summary>
        /// <param name="patroni">The cluster.</param>
        /// <param name="maxReplicaLag">The lag budget; the library's default when null.</param>
        /// <param name="configure">Changes the options before the cluster is built (another topology source, say).</param>
        public static async Task<Library> CreateAsync(PatroniCluster patroni, TimeSpan? maxReplicaLag = null, Action<EfReplicaOptions>? configure = null)
        {
            var options = new EfReplicaOptions
            {
                Primary = TestCluster.WithPool(patroni.MultiHostConnectionString, TestCluster.DefaultMaxPoolSize),
                HealthCheckInterval = ProbeInterval,
            };

            // What docs/operations-and-ha.md tells an HA deployment: a read with no primary to go to (a read-back right after a write whose
            // position the vanishing primary could not give) waits for the new one up to the read deadline, so the deadline
            // must cover a switchover (2.3-3.7 s from Patroni's call to a writable leader on this loaded machine; the
            // default, interval + probe timeout, is 2.25 s here).
            options.Failover.ReadDeadline = TimeSpan.FromSeconds(6);
            // A read-back right after a write the killed leader acknowledged (its position never learned) has no standby that can
            // be shown to have the write: it waits for the new leader, which Patroni promotes after its ttl (10 s here).
            options.Failover.PrimaryWait = TimeSpan.FromSeconds(30);
            if (maxReplicaLag is { } lag)
            {
                options.MaxReplicaLag = lag;
            }

            foreach (var member in patroni.Members)
            {
                options.Replicas.Add(new ReplicaEndpointOptions { Name = member.Name, ConnectionString = TestCluster.WithPool(member.ConnectionString, TestCluster.DefaultMaxPoolSize) });
            }

            configure?.Invoke(options);
            var recorder = new RoutingRecorder();
            var loggerFactory = recorder.CreateFactory();
            var cluster = EfReplicaCluster.Create(options, loggerFactory);
            await cluster.RefreshHealthAsync();
            return new Library(cluster, options, recorder, loggerFactory);
        }

        public ReplicaEndpoint Replica(string name) => Cluster.Replicas.Single(replica => replica.Name == name);

        public async Task<string> HealthAsync()
        {
            var result = await _health.CheckHealthAsync(new HealthCheckContext());
            return $"{result.Status} ({result.Description})";
        }

        /// <summary>Polls the health check until Healthy, up to <paramref name="bound"/>; returns the last result and how long it took.</summary>
        public async Task<HealthFigure> WaitForHealthyAsync(TimeSpan bound)
        {
            var clock = Stopwatch.StartNew();
            var first = await _health.CheckHealthAsync(new HealthCheckContext());
            var last = first;
            while (last.Status != HealthStatus.Healthy && clock.Elapsed < bound)
            {
                await Task.Delay(50);
                last = await _health.CheckHealthAsync(new HealthCheckContext());
            }

            return new HealthFigure(last.Status, first.Status, clock.Elapsed, last.Description);
        }

        /// <summary>The library's events other than routing decisions, counted by id and level.</summary>
        public string Events()
            => "events: " + string.Join(", ", _recorder.AllEvents.Where(e => e.EventId is not (1000 or 1001))
                .GroupBy(e => (e.EventId, e.Level)).OrderBy(g => g.Key.EventId)
                .Select(g => $"{g.Key.EventId} ({g.Key.Level}) x{g.Count()}: \"{g.First().Message}\""));

        public async ValueTask DisposeAsync()
        {
            await Cluster.DisposeAsync();
            _loggerFactory.Dispose();
            _recorder.Dispose();
        }
    }

    /// <summary>A health poll: the status reached, the first status seen, how long it polled.</summary>
    private sealed record HealthFigure(HealthStatus Status, HealthStatus First, TimeSpan Took, string? Description)
    {
        public override string ToString() => $"{Status} after {Took.TotalSeconds:0.0} s (first {First}){(Status == HealthStatus.Healthy ? "" : $": {Description}")}";
    }
}
