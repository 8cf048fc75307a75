using System.Diagnostics;
using System.Globalization;
using EfReplicaInterceptor.Testing;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Patroni;

/// <summary>
/// The Patroni harness under a real Patroni 3 cluster (etcd and three PostgreSQL members on loopback), judged from the servers:
/// <c>pg_is_in_recovery()</c> and <c>inet_server_port()</c> through each member's own connection string. One cluster for the
/// fixture, the steps in order (each leaves the cluster healthy for the next): it saves a bootstrap per step.
/// When Patroni is missing the fixture fails on CI (<c>CI=true</c>) and with <c>EFREPLICA_REQUIRE_PATRONI=1</c>, and is skipped
/// elsewhere; <c>bash build/ensure-patroni.sh</c> installs it.
/// </summary>
[Parallelizable(ParallelScope.Fixtures)]
public sealed class PatroniClusterTests
{
    private static readonly TimeSpan ReplayBound = TimeSpan.FromSeconds(60);

    private PatroniCluster _cluster = null!;
    private int _nextId;

    [OneTimeSetUp]
    public async Task StartCluster()
    {
        PatroniRequirement.EnsureInstalled();

        var clock = Stopwatch.StartNew();
        _cluster = await PatroniCluster.StartAsync(members: 3);
        Report($"bootstrap (etcd + 3 members, leader writable, 2 replicas streaming): {Seconds(clock.Elapsed)} ("
            + string.Join(", ", _cluster.StartupStages.Select(stage => $"{stage.Key} {Seconds(stage.Value)}")) + ")");

        var leader = await _cluster.WaitForLeaderAsync();
        await Sql(leader, "CREATE TABLE patroni_items (id int PRIMARY KEY, note text)");
    }

    [OneTimeTearDown]
    public async Task StopCluster()
    {
        if (_cluster is not null)
        {
            Report($"memory (PSS) of etcd, Patroni and PostgreSQL at the end: {_cluster.GetMemoryBytes() / (1024 * 1024)} MiB");
            await _cluster.DisposeAsync();
        }
    }

    [Test, Order(1)]
    public async Task Starts_with_one_writable_leader_and_streaming_replicas_that_cluster_reports()
    {
        var state = await _cluster.GetClusterAsync();
        Report("GET /cluster: " + state.Json);
        Report($"memory (PSS) of etcd, Patroni and PostgreSQL (3 members): {_cluster.GetMemoryBytes() / (1024 * 1024)} MiB");

        Assert.That(state.Members.Select(member => member.Name), Is.EquivalentTo(new[] { "member1", "member2", "member3" }));
        Assert.That(_cluster.RestApiEndpoints, Has.Count.EqualTo(3));

        var writable = new List<string>();
        foreach (var member in _cluster.Members)
        {
            var (port, inRecovery) = await Ask(member);
            Assert.That(port, Is.EqualTo(member.Port), $"{member.Name}: its connection string reaches its own server");
            var reported = state.Member(member.Name)!;
            Assert.That(reported.Host, Is.EqualTo("127.0.0.1"));
            Assert.That(reported.Port, Is.EqualTo(member.Port));
            Assert.That(reported.IsRunning, Is.True, reported.ToString());
            Assert.That(reported.IsLeader, Is.EqualTo(!inRecovery), $"{member.Name}: Patroni's role agrees with pg_is_in_recovery()");
            if (!inRecovery)
            {
                writable.Add(member.Name);
            }
            else
            {
                Assert.That(reported.IsReplica, Is.True, reported.ToString());
                Assert.That(await Scalar<string>(member, "SELECT status FROM pg_stat_wal_receiver"), Is.EqualTo("streaming"), member.Name);
            }
        }

        Assert.That(writable, Is.EqualTo(new[] { state.Leader!.Name }), "exactly one writable member, the leader");
        var leader = _cluster.Member(state.Leader.Name);
        Assert.That(await Scalar<long>(leader, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"), Is.EqualTo(2));
        await AssertReplicatesAsync();
    }

    [Test, Order(2)]
    public async Task A_noloadbalance_tag_shows_in_cluster_and_goes_away()
    {
        var replica = await AnyReplicaAsync();

        var tagged = await _cluster.SetNoLoadBalanceAsync(replica.Name, true);
        Assert.That(tagged.NoLoadBalance, Is.True);
        var state = await _cluster.GetClusterAsync();
        Assert.That(state.Member(replica.Name)!.Tags["noloadbalance"], Is.EqualTo("true"));
        Assert.That(state.Members.Where(member => member.Name != replica.Name).Select(member => member.NoLoadBalance), Is.All.False);
        Report("GET /cluster with a noloadbalance member: " + state.Json);

        var cleared = await _cluster.SetNoLoadBalanceAsync(replica.Name, false);
        Assert.That(cleared.NoLoadBalance, Is.False);
        Assert.That(await InRecovery(replica), Is.True, "the member stays a replica through the reload");
    }

    [Test, Order(3)]
    public async Task A_member_with_a_replay_delay_lags_behind_the_other_replica_and_catches_up_when_it_ends()
    {
        var state = await _cluster.GetClusterAsync();
        var replicas = state.Members.Where(member => member.IsReplica).Select(member => _cluster.Member(member.Name)).ToList();
        Assert.That(replicas, Has.Count.EqualTo(2));
        var (delayed, current) = (replicas[0], replicas[1]);
        var leader = _cluster.Member(state.Leader!.Name);

        await _cluster.SetReplayDelayAsync(delayed.Name, TimeSpan.FromMinutes(5));
        try
        {
            var id = await InsertAsync(leader);
            await WaitUntilVisibleAsync(current, id);

            // The other replica has the row; the delayed one received it but does not apply it.
            Assert.That(await HasRow(delayed, id), Is.False, $"{delayed.Name} applies no transaction younger than its delay");
            await Poll(
                async () => await Scalar<bool>(delayed, "SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()"),
                "the delayed replica to have received WAL it has not replayed");
            Assert.That(await InRecovery(delayed), Is.True);
            var lagging = await _cluster.GetClusterAsync();
            Report($"Patroni's lag figures with {delayed.Name} 5 min behind in replay: "
                + string.Join(", ", lagging.Members.Select(member => $"{member.Name}={member.LagBytes?.ToString(CultureInfo.InvariantCulture) ?? "-"}")));
        }
        finally
        {
            await _cluster.SetReplayDelayAsync(delayed.Name, TimeSpan.Zero);
        }

        var last = await InsertAsync(leader);
        await WaitUntilVisibleAsync(delayed, last);
    }

    [Test, Order(4)]
    public async Task A_switchover_moves_the_leader_and_the_old_leader_comes_back_as_a_streaming_replica()
    {
        var before = (await _cluster.GetClusterAsync()).Leader!.Name;

        var clock = Stopwatch.StartNew();
        var leader = await _cluster.SwitchoverAsync();
        var switched = clock.Elapsed;
        await _cluster.WaitForStreamingAsync(before);
        Report($"switchover {before} -> {leader.Name}: new leader writable after {Seconds(switched)}, old leader streaming after {Seconds(clock.Elapsed)}");

        Assert.That(leader.Name, Is.Not.EqualTo(before));
        Assert.That(await Ask(leader), Is.EqualTo((leader.Port, false)), "the new leader is writable, judged by its server");
        Assert.That(await Ask(_cluster.Member(before)), Is.EqualTo((_cluster.Member(before).Port, true)), "the old leader is a standby");
        await AssertReplicatesAsync();
    }

    [Test, Order(5)]
    public async Task A_killed_leader_is_replaced_and_rejoins_as_a_replica()
    {
        var clock = Stopwatch.StartNew();
        var killed = await _cluster.KillLeaderAsync();
        Assert.That(killed.IsRunning, Is.False);
        Assert.That(killed.IsPostgresRunning, Is.False);
        Report("GET /cluster right after the leader was killed: " + (await _cluster.GetClusterAsync()).Json);

        var leader = await _cluster.WaitForNewLeaderAsync(killed.Name);
        var failover = clock.Elapsed;
        Assert.That(await Ask(leader), Is.EqualTo((leader.Port, false)), "the promoted member is writable");

        var rejoin = Stopwatch.StartNew();
        await _cluster.StartMemberAsync(killed.Name);
        Report($"failover after the leader {killed.Name} was killed: {leader.Name} writable after {Seconds(failover)} (ttl 10 s); "
            + $"{killed.Name} started again and streaming after {Seconds(rejoin.Elapsed)}");

        Assert.That(await Ask(killed), Is.EqualTo((killed.Port, true)), "the old leader is a standby now");
        await _cluster.WaitForHealthyAsync();
        await AssertReplicatesAsync();
    }

    [Test, Order(6)]
    public async Task A_stopped_member_restarts_and_streams_what_it_missed()
    {
        var replica = await AnyReplicaAsync();
        var leader = await _cluster.WaitForLeaderAsync();

        var clock = Stopwatch.StartNew();
        await _cluster.StopMemberAsync(replica.Name);
        var stopped = clock.Elapsed;
        try
        {
            Assert.That(replica.IsRunning || replica.IsPostgresRunning, Is.False);
            Assert.ThrowsAsync(Is.InstanceOf<NpgsqlException>(), async () => await Ask(replica), "a stopped member does not answer");

            // The cluster's view lives in etcd and is written by the members' Patroni loops: on a loaded machine the stopped
            // member's last "running" can outlive its processes for a loop or two (its key expires after the ttl at the
            // latest), so the view is polled, with the ttl and a margin as the bound, not asked once.
            var withoutIt = await _cluster.GetClusterAsync();
            var viewClock = Stopwatch.StartNew();
            while (withoutIt.Member(replica.Name)?.IsRunning ?? false)
            {
                Assert.That(viewClock.Elapsed, Is.LessThan(ReplayBound), "Patroni does not report a stopped member as running, " + withoutIt.Json);
                await Task.Delay(100);
                withoutIt = await _cluster.GetClusterAsync();
            }

            Report($"GET /cluster with a member stopped ({Seconds(viewClock.Elapsed)} after the stop returned): " + withoutIt.Json);
        }
        catch
        {
            await _cluster.StartMemberAsync(replica.Name); // the tests after this one need every member
            throw;
        }

        var missed = await InsertAsync(leader);
        clock.Restart();
        var state = await _cluster.StartMemberAsync(replica.Name);
        Report($"member {replica.Name} stopped in {Seconds(stopped)}, started and streaming again after {Seconds(clock.Elapsed)}");

        Assert.That(state.IsReplica, Is.True);
        Assert.That(await Ask(replica), Is.EqualTo((replica.Port, true)));
        await WaitUntilVisibleAsync(replica, missed);
    }

    [Test, Order(6)]
    public async Task A_reinitialized_replica_is_rebuilt_from_the_leader_and_streams_what_it_missed()
    {
        var replica = await AnyReplicaAsync();
        var leader = await _cluster.WaitForLeaderAsync();
        var before = await replica.ControlScalarAsync<DateTime>("SELECT pg_postmaster_start_time()", CancellationToken.None);
        var missed = await InsertAsync(leader);

        var clock = Stopwatch.StartNew();
        var state = await _cluster.ReinitializeAsync(replica.Name);
        Report($"member {replica.Name} reinitialized and streaming again after {Seconds(clock.Elapsed)}");

        Assert.That(state.IsReplica, Is.True);
        Assert.That(await replica.ControlScalarAsync<DateTime>("SELECT pg_postmaster_start_time()", CancellationToken.None), Is.GreaterThan(before), "a new server, built again");
        Assert.That(await Ask(replica), Is.EqualTo((replica.Port, true)));
        await WaitUntilVisibleAsync(replica, missed);
    }

    [Test, Order(7)]
    public async Task An_added_fourth_member_copies_the_leader_and_streams()
    {
        var leader = await _cluster.WaitForLeaderAsync();
        var existing = await InsertAsync(leader);

        var clock = Stopwatch.StartNew();
        var added = await _cluster.AddMemberAsync();
        Report($"fourth member {added.Name} streaming after {Seconds(clock.Elapsed)}");

        Assert.That(added.Name, Is.EqualTo("member4"));
        Assert.That(_cluster.Members, Has.Count.EqualTo(4));
        Assert.That(_cluster.RestApiEndpoints, Has.Count.EqualTo(4));
        Assert.That(await Ask(added), Is.EqualTo((added.Port, true)));
        Assert.That(await HasRow(added, existing), Is.True, "it starts from a copy of the leader");

        var state = await _cluster.WaitForHealthyAsync();
        Assert.That(state.Members, Has.Count.EqualTo(4));
        var leaderMember = _cluster.Member(state.Leader!.Name);
        await Poll( // a walsender reports 'catchup' until its standby has caught up once
            async () => await Scalar<long>(leaderMember, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == 3,
            "three standbys streaming from the leader");
        await AssertReplicatesAsync();
        Report($"memory (PSS) of etcd, Patroni and PostgreSQL (4 members): {_cluster.GetMemoryBytes() / (1024 * 1024)} MiB");
    }

    /// <summary>A row written on the leader reaches every running replica.</summary>
    private async Task AssertReplicatesAsync()
    {
        var state = await _cluster.GetClusterAsync();
        var id = await InsertAsync(_cluster.Member(state.Leader!.Name));
        foreach (var replica in state.Members.Where(member => member.IsReplica))
        {
            await WaitUntilVisibleAsync(_cluster.Member(replica.Name), id);
        }
    }

    private async Task<PatroniMember> AnyReplicaAsync()
    {
        var state = await _cluster.WaitForHealthyAsync();
        return _cluster.Member(state.Members.First(member => member.IsReplica).Name);
    }

    private async Task<int> InsertAsync(PatroniMember leader)
    {
        var id = Interlocked.Increment(ref _nextId);
        await Sql(leader, string.Create(CultureInfo.InvariantCulture, $"INSERT INTO patroni_items VALUES ({id}, 'row {id}')"));
        return id;
    }

    private static async Task WaitUntilVisibleAsync(PatroniMember member, int id) =>
        await Poll(() => HasRow(member, id), $"row {id} to be visible on {member.Name}");

    private static Task<bool> HasRow(PatroniMember member, int id) =>
        Scalar<bool>(member, string.Create(CultureInfo.InvariantCulture, $"SELECT EXISTS (SELECT 1 FROM patroni_items WHERE id = {id})"));

    private static async Task<bool> InRecovery(PatroniMember member) => (await Ask(member)).InRecovery;

    /// <summary>Which server the member's connection string reaches, and whether it is a standby, from the server itself.</summary>
    private static async Task<(int Port, bool InRecovery)> Ask(PatroniMember member)
    {
        await using var connection = new NpgsqlConnection(Unpooled(member));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT inet_server_port(), pg_is_in_recovery()", connection);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.That(await reader.ReadAsync(), Is.True);
        return (reader.GetInt32(0), reader.GetBoolean(1));
    }

    private static async Task<T> Scalar<T>(PatroniMember member, string sql)
    {
        await using var connection = new NpgsqlConnection(Unpooled(member));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    private static async Task Sql(PatroniMember member, string sql)
    {
        await using var connection = new NpgsqlConnection(Unpooled(member));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static string Unpooled(PatroniMember member) =>
        new NpgsqlConnectionStringBuilder(member.ConnectionString) { Pooling = false, Timeout = 5 }.ConnectionString;

    /// <summary>Polls every 20 ms until the condition holds; errors count as "not yet"; fails after <see cref="ReplayBound"/>.</summary>
    private static async Task Poll(Func<Task<bool>> condition, string waitingFor)
    {
        var clock = Stopwatch.StartNew();
        Exception? last = null;
        while (clock.Elapsed < ReplayBound)
        {
            try
            {
                if (await condition())
                {
                    return;
                }
            }
            catch (NpgsqlException exception)
            {
                last = exception;
            }

            await Task.Delay(20);
        }

        Assert.Fail($"Timed out after {ReplayBound.TotalSeconds} s waiting for {waitingFor}." + (last is null ? string.Empty : $" Last error: {last.Message}"));
    }

    private static string Seconds(TimeSpan elapsed) => string.Create(CultureInfo.InvariantCulture, $"{elapsed.TotalSeconds:0.00} s");

    private static void Report(string line) => TestContext.Progress.WriteLine("patroni: " + line);
}
