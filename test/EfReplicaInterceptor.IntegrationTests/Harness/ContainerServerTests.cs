using EfReplicaInterceptor.TestSupport;
using System.Diagnostics;
using Docker.DotNet;
using EfReplicaInterceptor.IntegrationTests.Containers;
using EfReplicaInterceptor.Testing;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Harness;

/// <summary>
/// The container backend's servers and faults, proven from the servers' side and from Docker's. The shared set is put
/// back the way it was by every test; promotion, which cannot be undone, gets a set of its own.
/// </summary>
[NonParallelizable]
public sealed class ContainerServerTests
{
    private PostgresReplicaSet _set = null!;
    private int _nextId;

    private PostgresServer Primary => _set.Primary;

    private PostgresServer Standby => _set.Standby;

    [OneTimeSetUp]
    public async Task StartSet()
    {
        _set = await ContainerSets.StartAsync(standbys: 1);
        await Primary.ExecuteAsync("CREATE TABLE container_items (id int PRIMARY KEY)");
        await _set.WaitForReplayAsync(Standby);
    }

    [OneTimeTearDown]
    public async Task StopSet()
    {
        if (_set is not null)
        {
            await _set.DisposeAsync();
        }
    }

    [Test]
    public async Task Servers_run_in_containers_and_are_reached_only_through_ports_published_on_loopback()
    {
        Assert.That(_set.Backend, Is.EqualTo(PostgresBackend.Containers));
        Assert.That(_set.IsExternal, Is.False);
        foreach (var server in new[] { Primary, Standby })
        {
            Assert.That(new NpgsqlConnectionStringBuilder(server.ConnectionString).Host, Is.EqualTo("127.0.0.1"));
            Assert.That(await server.ScalarAsync<int>("SELECT inet_server_port()"), Is.EqualTo(server.Port), "the port inside is the published one");
            Assert.That(await server.ScalarAsync<string>("SELECT current_database()"), Is.EqualTo("efreplica"));
            Assert.That(server.IsRunning, Is.True);

            using var docker = new DockerClientConfiguration().CreateClient();
            var inspect = await docker.Containers.InspectContainerAsync(server.Container!.Id);
            var bindings = inspect.HostConfig.PortBindings.SelectMany(binding => binding.Value).ToList();
            Assert.That(bindings.Select(b => (b.HostIP, b.HostPort)), Is.EqualTo(new[] { ("127.0.0.1", server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)) }), server.Name);
        }

        Assert.That(await Primary.ScalarAsync<bool>("SELECT pg_is_in_recovery()"), Is.False);
        Assert.That(await Standby.ScalarAsync<bool>("SELECT pg_is_in_recovery()"), Is.True);
        Assert.That(await Primary.ScalarAsync<string>("SELECT state FROM pg_stat_replication WHERE application_name = 'standby1'"), Is.EqualTo("streaming"));
        Assert.That(await Standby.ScalarAsync<string>("SELECT status FROM pg_stat_wal_receiver"), Is.EqualTo("streaming"));
        Assert.That(await Standby.ScalarAsync<string>("SELECT sender_host FROM pg_stat_wal_receiver"), Is.EqualTo("primary"), "the standby streams over the set's own network");
    }

    [Test]
    public async Task PauseReplayAsync_and_SetRecoveryMinApplyDelayAsync_hold_rows_back_on_a_container_standby()
    {
        var paused = Interlocked.Increment(ref _nextId);
        await Standby.PauseReplayAsync();
        try
        {
            await Primary.ExecuteAsync($"INSERT INTO container_items VALUES ({paused})");
            Assert.ThrowsAsync<TimeoutException>(async () => await _set.WaitForReplayAsync(Standby, TimeSpan.FromMilliseconds(500)));
            Assert.That(await CountOnStandby(paused), Is.Zero);
        }
        finally
        {
            await Standby.ResumeReplayAsync();
        }

        await _set.WaitForReplayAsync(Standby);
        Assert.That(await CountOnStandby(paused), Is.EqualTo(1));

        var delayed = Interlocked.Increment(ref _nextId);
        await Standby.SetRecoveryMinApplyDelayAsync(TimeSpan.FromMilliseconds(1500));
        try
        {
            var watch = Stopwatch.StartNew();
            await Primary.ExecuteAsync($"INSERT INTO container_items VALUES ({delayed})");
            await _set.WaitForReplayAsync(Standby, TimeSpan.FromSeconds(20));
            Assert.That(watch.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(1200)));
        }
        finally
        {
            await Standby.SetRecoveryMinApplyDelayAsync(TimeSpan.Zero);
        }
    }

    [TestCase(StopMode.Fast)]
    [TestCase(StopMode.Immediate)]
    public async Task StopAsync_refuses_connections_and_StartAsync_brings_the_primary_back_on_its_port(StopMode mode)
    {
        var port = Primary.Port;

        await Primary.StopAsync(mode);

        Assert.That(Primary.IsRunning, Is.False);
        var refused = Assert.ThrowsAsync<NpgsqlException>(async () => await Primary.ScalarAsync<int>("SELECT 1"));
        Assert.That(refused!.InnerException, Is.InstanceOf<System.Net.Sockets.SocketException>().Or.InstanceOf<EndOfStreamException>().Or.InstanceOf<IOException>());

        await Primary.StartAsync();

        Assert.That(Primary.IsRunning, Is.True);
        Assert.That(await Primary.ScalarAsync<int>("SELECT inet_server_port()"), Is.EqualTo(port));
        Assert.That(await Primary.ScalarAsync<bool>("SELECT pg_is_in_recovery()"), Is.False);
        await AssertReplicationCarriesOn();
    }

    [Test]
    public async Task KillAsync_kills_the_standby_without_shutdown_and_StartAsync_recovers_it_as_a_standby()
    {
        await Standby.KillAsync();

        Assert.That(Standby.IsRunning, Is.False);
        Assert.ThrowsAsync<NpgsqlException>(async () => await Standby.ScalarAsync<int>("SELECT 1"));

        await Standby.StartAsync();

        Assert.That(await Standby.ScalarAsync<bool>("SELECT pg_is_in_recovery()"), Is.True);
        await AssertReplicationCarriesOn();
    }

    [Test]
    public async Task PauseContainerAsync_leaves_sessions_unanswered_until_UnpauseContainerAsync()
    {
        var startedBefore = await Standby.ScalarAsync<DateTime>("SELECT pg_postmaster_start_time()");
        var hung = new NpgsqlConnectionStringBuilder(Standby.ConnectionString) { Pooling = false, Timeout = 2 }.ConnectionString;

        await Standby.PauseContainerAsync();
        Stopwatch watch;
        try
        {
            watch = Stopwatch.StartNew();
            var attempt = Task.Run(async () =>
            {
                await using var connection = new NpgsqlConnection(hung);
                await connection.OpenAsync();
            });
            var finished = await Task.WhenAny(attempt, Task.Delay(TimeSpan.FromSeconds(30)));
            Assert.That(finished, Is.SameAs(attempt), "a connection attempt to a paused server should end by its 2 s connect timeout");
            Assert.That(attempt.IsFaulted, Is.True, "nothing can answer a paused server's sessions");
            TestContext.Out.WriteLine($"connect to the paused standby failed after {watch.ElapsedMilliseconds} ms: {attempt.Exception?.InnerException?.GetType().Name}");
        }
        finally
        {
            await Standby.UnpauseContainerAsync();
        }

        Assert.That(await Standby.ScalarAsync<DateTime>("SELECT pg_postmaster_start_time()"), Is.EqualTo(startedBefore), "the same postmaster goes on");
        await AssertReplicationCarriesOn();
    }

    [Test]
    public async Task DisconnectFromServersAsync_stops_replication_while_the_standby_still_answers()
    {
        await Standby.DisconnectFromServersAsync();
        var id = Interlocked.Increment(ref _nextId);
        try
        {
            await Primary.ExecuteAsync($"INSERT INTO container_items VALUES ({id})");

            Assert.ThrowsAsync<TimeoutException>(async () => await _set.WaitForReplayAsync(Standby, TimeSpan.FromSeconds(3)));
            Assert.That(await Standby.ScalarAsync<bool>("SELECT pg_is_in_recovery()"), Is.True, "the standby still answers the application");
            Assert.That(await CountOnStandby(id), Is.Zero);
        }
        finally
        {
            await Standby.ReconnectAsync();
        }

        await _set.WaitForReplayAsync(Standby, TimeSpan.FromSeconds(30));
        Assert.That(await CountOnStandby(id), Is.EqualTo(1));
    }

    [Test]
    public async Task DisconnectFromApplicationAsync_cuts_the_published_port_while_the_server_keeps_running()
    {
        var startedBefore = await Standby.ScalarAsync<DateTime>("SELECT pg_postmaster_start_time()");

        await Standby.DisconnectFromApplicationAsync();
        try
        {
            var cut = new NpgsqlConnectionStringBuilder(Standby.ConnectionString) { Pooling = false, Timeout = 2 }.ConnectionString;
            var watch = Stopwatch.StartNew();
            Assert.ThrowsAsync<NpgsqlException>(async () =>
            {
                await using var connection = new NpgsqlConnection(cut);
                await connection.OpenAsync();
            });
            TestContext.Out.WriteLine($"connect to the partitioned standby failed after {watch.ElapsedMilliseconds} ms");
            Assert.That(Standby.IsRunning, Is.True);
        }
        finally
        {
            await Standby.ReconnectAsync();
        }

        Assert.That(await Standby.ScalarAsync<DateTime>("SELECT pg_postmaster_start_time()"), Is.EqualTo(startedBefore), "the server ran on through the partition");
        await AssertReplicationCarriesOn();
    }

    [Test]
    public async Task PromoteAsync_turns_a_container_standby_into_a_writable_primary()
    {
        await using var own = await ContainerSets.StartAsync(standbys: 1);

        await own.Standby.PromoteAsync();

        Assert.That(await own.Standby.ScalarAsync<bool>("SELECT pg_is_in_recovery()"), Is.False);
        await own.Standby.ExecuteAsync("CREATE TABLE promoted (id int)");
        Assert.That(await own.Standby.ScalarAsync<long>("SELECT count(*) FROM promoted"), Is.Zero);
    }

    [Test]
    public async Task DisposeAsync_removes_the_sets_containers_and_networks()
    {
        var own = await ContainerSets.StartAsync(standbys: 1);
        var ids = new[] { own.Primary.Container!.Id, own.Standby.Container!.Id };

        await own.DisposeAsync();
        await own.DisposeAsync();

        using var docker = new DockerClientConfiguration().CreateClient();
        foreach (var id in ids)
        {
            Assert.ThrowsAsync<DockerContainerNotFoundException>(async () => await docker.Containers.InspectContainerAsync(id));
        }

        var networks = await docker.Networks.ListNetworksAsync();
        Assert.That(networks.Select(n => n.Name), Has.None.Contains(own.ToString().Split(' ')[4]));
    }

    private async Task AssertReplicationCarriesOn()
    {
        var id = Interlocked.Increment(ref _nextId);
        await Primary.ExecuteAsync($"INSERT INTO container_items VALUES ({id})");
        await _set.WaitForReplayAsync(Standby, TimeSpan.FromSeconds(30));
        Assert.That(await CountOnStandby(id), Is.EqualTo(1));
    }

    private Task<long> CountOnStandby(int id) => Standby.ScalarAsync<long>($"SELECT count(*) FROM container_items WHERE id = {id}");
}

/// <summary>The faults only containers give are refused, saying why, by local servers.</summary>
public sealed class LocalServerContainerFaultTests
{
    [Test]
    public async Task Container_faults_throw_NotSupportedException_on_local_servers()
    {
        await using var set = await PostgresReplicaSet.StartAsync(standbys: 0, new PostgresReplicaSetOptions { Backend = PostgresBackend.Local });

        Assert.That(set.Backend, Is.EqualTo(PostgresBackend.Local));
        var pause = Assert.ThrowsAsync<NotSupportedException>(async () => await set.Primary.PauseContainerAsync());
        Assert.That(pause!.Message, Does.Contain("does not run in a container").And.Contain("EFREPLICA_TEST_BACKEND"));
        Assert.ThrowsAsync<NotSupportedException>(async () => await set.Primary.KillAsync());
        Assert.ThrowsAsync<NotSupportedException>(async () => await set.Primary.DisconnectFromServersAsync());
        Assert.ThrowsAsync<NotSupportedException>(async () => await set.Primary.DisconnectFromApplicationAsync());
        Assert.ThrowsAsync<NotSupportedException>(async () => await set.Primary.ReconnectAsync());
        Assert.That(await set.Primary.ScalarAsync<int>("SELECT 1"), Is.EqualTo(1), "the local server is untouched");
    }
}
