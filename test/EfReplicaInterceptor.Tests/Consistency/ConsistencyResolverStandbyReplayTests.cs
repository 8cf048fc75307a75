using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Tests.Consistency;

/// <summary>
/// The primary's view of its standbys' replay, read with a position capture (<see cref="StandbyReplayReports"/>): a row is
/// credited to a replica only when its name is that replica's WAL receiver name and nobody else's (no other row, no other
/// replica), its columns are all shown, and it was sent by the replica's current run; then the read after a write takes the
/// replica that has replayed the position without a replay check. Fake round trips, <c>FakeTimeProvider</c>; both replicas
/// are known (from a sample) to have replayed 1,000 in run <see cref="ResolverCluster.Run"/>, the primary captures 2,000.
/// </summary>
public sealed class ConsistencyResolverStandbyReplayTests
{
    private const long AfterStart = ResolverCluster.Run + 1;
    private ResolverCluster _cluster = null!;

    private ReplicaEndpoint R0 => _cluster.Replicas[0];

    private ReplicaEndpoint R1 => _cluster.Replicas[1];

    [SetUp]
    public void CreateCluster()
    {
        _cluster = new ResolverCluster();
        R0.WalReceiver = FromPrimary("s0");
        R1.WalReceiver = FromPrimary("s1");
    }

    [TearDown]
    public void Dispose() => _cluster.Dispose();

    [Test]
    public async Task Each_row_is_credited_to_its_replica_and_the_read_after_the_write_needs_no_replay_check()
    {
        _cluster.RoundTrips.Standbys = [new("s1", 1_500, AfterStart), new("s0", 2_000, AfterStart)];
        var lease = _cluster.Wrote();

        var choice = await _cluster.ResolveAsync(lease, readYourWrites: true);

        Assert.That((choice.Replica?.Name, lease.RequiredLsn, _cluster.RoundTrips.Captures), Is.EqualTo(("r0", 2_000UL, 1)));
        Assert.That(_cluster.RoundTrips.ReplayChecks, Is.Empty, "the primary's row said r0 had replayed the position");
        Assert.That((R0.KnownReplayLsn, R1.KnownReplayLsn), Is.EqualTo((2_000UL, 1_500UL)));
    }

    [Test]
    public async Task A_row_raises_the_known_position_not_the_time_it_holds_for()
    {
        var lease = _cluster.Scope(onReplica: 0);
        _cluster.Served(lease, R0); // after the monitor's last sample of r0
        var servedUntil = lease.Reads.LastServedAt;
        _cluster.RoundTrips.Standbys = [new("s0", 2_000, AfterStart)];
        _cluster.Wrote(lease);

        await _cluster.ResolveAsync(lease, readYourWrites: true);

        Assert.That(R0.KnownReplayLsn, Is.EqualTo(2_000UL));
        Assert.That(R0.ReplayBound(R0.Incarnation, servedUntil), Is.Null,
            "the row is a lower bound of the replay now, not an upper bound of what the read before the capture saw");
    }

    [Test]
    public async Task Standbys_all_at_the_default_name_are_ignored()
    {
        (R0.WalReceiver, R1.WalReceiver) = (FromPrimary("walreceiver"), FromPrimary("walreceiver"));
        _cluster.RoundTrips.Standbys = [new("walreceiver", 2_000, AfterStart), new("walreceiver", 2_000, AfterStart)];

        await ResolveAfterWriteAsync();

        Assert.That((R0.KnownReplayLsn, R1.KnownReplayLsn), Is.EqualTo((1_000UL, 1_000UL)));
    }

    [Test]
    public async Task A_name_two_rows_carry_is_ignored()
    {
        _cluster.RoundTrips.Standbys = [new("s0", 2_000, AfterStart), new("s0", 2_000, AfterStart), new("s1", 1_500, AfterStart)];

        await ResolveAfterWriteAsync();

        Assert.That((R0.KnownReplayLsn, R1.KnownReplayLsn), Is.EqualTo((1_000UL, 1_500UL)), "s1 is one row's and one replica's: it counts");
    }

    [Test]
    public async Task A_name_two_replicas_say_is_ignored()
    {
        R1.WalReceiver = FromPrimary("s0"); // e.g. two standbys with one cluster_name (or one standby listed twice)
        _cluster.RoundTrips.Standbys = [new("s0", 2_000, AfterStart)];

        await ResolveAfterWriteAsync();

        Assert.That((R0.KnownReplayLsn, R1.KnownReplayLsn), Is.EqualTo((1_000UL, 1_000UL)));
    }

    [TestCase("name", TestName = "A row and a replica without a name (NULL conninfo on the standby) are not matched")]
    [TestCase("replay", TestName = "A row without a replay position (a WAL client that replays nothing) is ignored")]
    [TestCase("reply", TestName = "A row without a reply time is ignored")]
    public async Task A_row_with_a_null_column_is_ignored(string missing)
    {
        R0.WalReceiver = null; // its standby did not say (no pg_read_all_stats there, or an unclear conninfo)
        _cluster.RoundTrips.Standbys = [missing switch
        {
            "name" => new StandbyReplay(null, 2_000, AfterStart),
            "replay" => new StandbyReplay("s1", null, AfterStart),
            _ => new StandbyReplay("s1", 2_000, null),
        }];

        await ResolveAfterWriteAsync();

        Assert.That((R0.KnownReplayLsn, R1.KnownReplayLsn), Is.EqualTo((1_000UL, 1_000UL)));
        Assert.That(_cluster.RoundTrips.ReplayChecks, Is.EqualTo(new[] { "r0", "r1" }), "no shortcut: the replicas are asked, as without the rows");
    }

    [Test]
    public async Task A_row_no_configured_replica_says_is_its_own_is_ignored()
    {
        _cluster.RoundTrips.Standbys = [new("backup-standby", 2_000, AfterStart), new("s1", 1_200, AfterStart)];

        await ResolveAfterWriteAsync();

        Assert.That((R0.KnownReplayLsn, R1.KnownReplayLsn), Is.EqualTo((1_000UL, 1_200UL)));
    }

    [Test]
    public async Task A_row_sent_before_the_replica_s_current_run_started_is_ignored()
    {
        const long secondRun = 5_000;
        _cluster.Sampled(R0, replay: 900, run: secondRun); // restarted: a new incarnation, behind
        _cluster.RoundTrips.Standbys = [new("s0", 2_000, secondRun - 1)]; // the first run's walsender, not closed yet

        await ResolveAfterWriteAsync(r0Run: secondRun, r0Replay: 900);
        Assert.That(R0.KnownReplayLsn, Is.EqualTo(900UL), "a report of the previous run says nothing of this one");

        _cluster.RoundTrips.Standbys = [new("s0", 2_100, secondRun + 1)];
        _cluster.PrimaryLsn = 2_100;
        var next = await _cluster.ResolveAsync(_cluster.Wrote(), readYourWrites: true);
        Assert.That((R0.KnownReplayLsn, next.Replica?.Name), Is.EqualTo((2_100UL, "r0")), "the new run's own report counts");
    }

    [Test]
    public async Task A_row_after_a_failure_is_ignored_until_a_sample_says_which_run_answers()
    {
        R0.ReportFailure();
        _cluster.Time.Advance(TimeSpan.FromMilliseconds(1));
        _cluster.Sampled(R1, replay: 2_000); // takes the read: r0 is not asked
        _cluster.RoundTrips.Standbys = [new("s0", 2_000, AfterStart)];

        await _cluster.ResolveAsync(_cluster.Wrote(), readYourWrites: true);
        Assert.That((R0.KnownReplayLsn, R0.LastSeenReplayLsn), Is.EqualTo((0UL, 1_000UL)), "unknown since the failure, and a row does not say which run sent it: nothing recorded");

        _cluster.Sampled(R0, replay: 1_000);
        await _cluster.ResolveAsync(_cluster.Wrote(), readYourWrites: true);
        Assert.That(R0.KnownReplayLsn, Is.EqualTo(2_000UL));
    }

    [TestCase("10.0.0.6", 5432, TestName = "A replica whose receiver streams from another server (same port, another address) gets no credit")]
    [TestCase("10.0.0.5", 5433, TestName = "A replica whose receiver streams from another server (same address, another port) gets no credit")]
    public async Task A_replica_cascading_from_another_standby_with_the_same_name_gets_no_credit(string senderHost, int senderPort)
    {
        // r0 streams from a standby the cluster does not know, whose receiver has r0's name (one cluster_name, inherited
        // through pg_basebackup): the primary's only row is that standby's, ahead of r0.
        R0.WalReceiver = new WalReceiver("s0", TcpAddress.Parse(senderHost, senderPort), ReachedOverLoopback: false);
        _cluster.RoundTrips.Standbys = [new("s0", 2_000, AfterStart)];

        await ResolveAfterWriteAsync();

        Assert.That(R0.KnownReplayLsn, Is.EqualTo(1_000UL), "the upstream's replay is not r0's");
        Assert.That(_cluster.RoundTrips.ReplayChecks, Is.EqualTo(new[] { "r0", "r1" }), "no shortcut: the replicas are asked, as without the rows");
    }

    [Test]
    public async Task A_replica_whose_receiver_streams_from_the_primary_s_address_is_credited()
    {
        R0.WalReceiver = new WalReceiver("s0", TcpAddress.Parse("10.0.0.5", 5432), ReachedOverLoopback: false);
        _cluster.RoundTrips.Standbys = [new("s0", 2_000, AfterStart)];

        await ResolveAfterWriteAsync();

        Assert.That((R0.KnownReplayLsn, _cluster.RoundTrips.ReplayChecks.Count), Is.EqualTo((2_000UL, 0)));
    }

    [TestCase("sender", TestName = "A replica whose sender is not shown (no pg_read_all_stats, not streaming) gets no credit")]
    [TestCase("primary", TestName = "No replica gets credit when the capture does not say where it reached the primary (a unix socket)")]
    public async Task Without_both_addresses_there_is_no_credit(string missing)
    {
        if (missing == "sender")
        {
            R0.WalReceiver = new WalReceiver("s0", Sender: null, ReachedOverLoopback: false);
        }
        else
        {
            _cluster.RoundTrips.PrimaryAddress = null;
        }

        _cluster.RoundTrips.Standbys = [new("s0", 2_000, AfterStart)];

        await ResolveAfterWriteAsync();

        Assert.That(R0.KnownReplayLsn, Is.EqualTo(1_000UL));
        Assert.That(_cluster.RoundTrips.ReplayChecks, Is.EqualTo(new[] { "r0", "r1" }));
    }

    [TestCase(false, 1_000UL, TestName = "A loopback sender counts only when the replica was reached over loopback too: not")]
    [TestCase(true, 2_000UL, TestName = "A loopback sender counts only when the replica was reached over loopback too: reached so")]
    public async Task A_loopback_sender_counts_only_for_a_replica_on_the_application_s_host(bool reachedOverLoopback, ulong known)
    {
        // The application reaches the primary at 127.0.0.1:5432. A remote replica whose upstream runs on the replica's own
        // host at port 5432 also says 127.0.0.1:5432; only a replica the application reaches over loopback shares the host.
        _cluster.RoundTrips.PrimaryAddress = TcpAddress.Parse("127.0.0.1", 5432);
        R0.WalReceiver = new WalReceiver("s0", TcpAddress.Parse("127.0.0.1", 5432), reachedOverLoopback);
        _cluster.RoundTrips.Standbys = [new("s0", 2_000, AfterStart)];

        await ResolveAfterWriteAsync();

        Assert.That(R0.KnownReplayLsn, Is.EqualTo(known));
    }

    private static WalReceiver FromPrimary(string name) => new(name, ResolverCluster.PrimaryAddress, ReachedOverLoopback: false);

    /// <summary>A write, then a read of it; the replicas, when asked, answer what they are known to have replayed (a check changes nothing).</summary>
    private async Task ResolveAfterWriteAsync(long r0Run = ResolverCluster.Run, ulong r0Replay = 1_000)
    {
        _cluster.RoundTrips.Replays["r0"] = (r0Replay, r0Run);
        _cluster.RoundTrips.Replays["r1"] = (1_000, ResolverCluster.Run);
        await _cluster.ResolveAsync(_cluster.Wrote(), readYourWrites: true);
    }
}
