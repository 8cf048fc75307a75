using System.Diagnostics;
using EfReplicaInterceptor.Testing;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Harness;

/// <summary>
/// Lag and failure injection on one server, proven from the servers' side. The shared set is put
/// back the way it was by every test; promotion, which cannot be undone, gets a set of its own.
/// </summary>
[Parallelizable(ParallelScope.Fixtures)]
public sealed class PostgresServerTests
{
    private PostgresReplicaSet _set = null!;
    private int _nextId;

    private PostgresServer Primary => _set.Primary;

    private PostgresServer Standby => _set.Standby;

    [OneTimeSetUp]
    public async Task StartSet()
    {
        _set = await PostgresReplicaSet.StartAsync(standbys: 1);
        await Primary.ExecuteAsync("CREATE TABLE server_items (id int PRIMARY KEY)");

        // Tests pause replay on the standby; the table must be there before they do.
        await _set.WaitForReplayAsync(_set.Standby);
    }

    [OneTimeTearDown]
    public async Task StopSet() => await _set.DisposeAsync();

    [Test]
    public async Task HangAsync_freezes_every_process_of_the_server_so_nothing_answers_until_ResumeAsync()
    {
        if (_set.IsExternal || _set.Backend != PostgresBackend.Local)
        {
            Assert.Ignore("Hanging a local server needs servers started by the tests.");
        }

        var postmaster = int.Parse(File.ReadLines(Path.Combine(Standby.DataDirectory, "postmaster.pid")).First(), System.Globalization.CultureInfo.InvariantCulture);
        await using var dataSource = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(Standby.ConnectionString) { Pooling = false, Timeout = 30 }.ConnectionString);
        await Standby.HangAsync();
        Task<int> query;
        try
        {
            Assert.That(Standby.IsHung, Is.True);
            Assert.That(ProcessState(postmaster), Is.EqualTo("T"), "the postmaster is stopped (SIGSTOP)");

            // The kernel still accepts the connection; nothing answers it.
            query = Task.Run(async () =>
            {
                await using var connection = await dataSource.OpenConnectionAsync();
                await using var command = new NpgsqlCommand("SELECT 1", connection);
                return (int)(await command.ExecuteScalarAsync())!;
            });
            var finished = await Task.WhenAny(query, Task.Delay(TimeSpan.FromSeconds(1))) == query;
            Assert.That(finished, Is.False, "a hung server answered");
        }
        finally
        {
            await Standby.ResumeAsync();
        }

        Assert.That(Standby.IsHung, Is.False);
        Assert.That(ProcessState(postmaster), Is.Not.EqualTo("T"));
        Assert.That(await query.WaitAsync(TimeSpan.FromSeconds(20)), Is.EqualTo(1), "the held query completes once the server is continued");
    }

    private static string ProcessState(int processId)
    {
        var stat = File.ReadAllText($"/proc/{processId}/stat");
        return stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
    }

    [Test]
    public async Task PauseReplayAsync_hides_rows_the_standby_has_received_until_ResumeReplayAsync()
    {
        var id = Interlocked.Increment(ref _nextId);
        await Standby.PauseReplayAsync();
        try
        {
            Assert.That(await Standby.ScalarAsync<string>("SELECT pg_get_wal_replay_pause_state()"), Is.EqualTo("paused"));
            await Primary.ExecuteAsync($"INSERT INTO server_items VALUES ({id})");

            // The WAL has arrived on the standby; only replay is held back.
            await WaitUntilReceivedAsync();
            Assert.That(await CountOnStandby(id), Is.Zero, "row visible while replay is paused");
        }
        finally
        {
            await Standby.ResumeReplayAsync();
        }

        Assert.That(await Standby.ScalarAsync<string>("SELECT pg_get_wal_replay_pause_state()"), Is.EqualTo("not paused"));
        await _set.WaitForReplayAsync(Standby);
        Assert.That(await CountOnStandby(id), Is.EqualTo(1));
    }

    [Test]
    public async Task SetRecoveryMinApplyDelayAsync_makes_commits_visible_on_the_standby_that_much_later()
    {
        var id = Interlocked.Increment(ref _nextId);
        var delay = TimeSpan.FromMilliseconds(1500);
        await Standby.SetRecoveryMinApplyDelayAsync(delay);
        try
        {
            Assert.That(await Standby.ScalarAsync<string>("SHOW recovery_min_apply_delay"), Is.EqualTo("1500ms"));
            var watch = Stopwatch.StartNew();
            await Primary.ExecuteAsync($"INSERT INTO server_items VALUES ({id})");
            await WaitUntilReceivedAsync();
            if (watch.Elapsed < TimeSpan.FromMilliseconds(1000))
            {
                Assert.That(await CountOnStandby(id), Is.Zero, "row visible before the apply delay passed");
            }

            await _set.WaitForReplayAsync(Standby, TimeSpan.FromSeconds(20));

            Assert.That(watch.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(1200)));
            Assert.That(await CountOnStandby(id), Is.EqualTo(1));
        }
        finally
        {
            await Standby.SetRecoveryMinApplyDelayAsync(TimeSpan.Zero);
        }

        Assert.That(await Standby.ScalarAsync<string>("SHOW recovery_min_apply_delay"), Is.EqualTo("0"));
    }

    [Test]
    public async Task StopAsync_immediate_refuses_connections_and_StartAsync_brings_the_server_back_on_its_port()
    {
        var port = Primary.Port;
        var postmaster = PostgresReplicaSetTests.PostmasterId(Primary.DataDirectory);

        await Primary.StopAsync(StopMode.Immediate);

        Assert.That(Primary.IsRunning, Is.False);
        Assert.That(PostgresReplicaSetTests.IsLivePostgres(postmaster), Is.False);
        var refused = Assert.ThrowsAsync<NpgsqlException>(async () => await Primary.ScalarAsync<int>("SELECT 1"));
        Assert.That(refused!.InnerException, Is.InstanceOf<System.Net.Sockets.SocketException>());
        await Primary.StopAsync(StopMode.Immediate); // already stopped: nothing to do

        await Primary.StartAsync();

        Assert.That(Primary.IsRunning, Is.True);
        Assert.That(Primary.Port, Is.EqualTo(port));
        Assert.That(await Primary.ScalarAsync<int>("SELECT inet_server_port()"), Is.EqualTo(port));
        Assert.That(await Primary.ScalarAsync<bool>("SELECT pg_is_in_recovery()"), Is.False);

        // The standby reconnects by itself and replication carries on.
        var id = Interlocked.Increment(ref _nextId);
        await Primary.ExecuteAsync($"INSERT INTO server_items VALUES ({id})");
        await _set.WaitForReplayAsync(Standby);
        Assert.That(await CountOnStandby(id), Is.EqualTo(1));
    }

    [Test]
    public async Task RestartAsync_starts_a_new_postmaster_and_the_standby_stays_a_standby()
    {
        var startedBefore = await Standby.ScalarAsync<DateTime>("SELECT pg_postmaster_start_time()");

        await Standby.RestartAsync();

        Assert.That(await Standby.ScalarAsync<DateTime>("SELECT pg_postmaster_start_time()"), Is.GreaterThan(startedBefore));
        Assert.That(await Standby.ScalarAsync<bool>("SELECT pg_is_in_recovery()"), Is.True);
        var id = Interlocked.Increment(ref _nextId);
        await Primary.ExecuteAsync($"INSERT INTO server_items VALUES ({id})");
        await _set.WaitForReplayAsync(Standby);
        Assert.That(await CountOnStandby(id), Is.EqualTo(1));
    }

    [Test]
    public async Task ScalarAsync_reads_typed_values_and_nulls()
    {
        Assert.That(await Primary.ScalarAsync<int>("SELECT 42"), Is.EqualTo(42));
        Assert.That(await Primary.ScalarAsync<long>("SELECT count(*) FROM pg_database WHERE datname = 'efreplica'"), Is.EqualTo(1));
        Assert.That(await Primary.ScalarAsync<string?>("SELECT NULL::text"), Is.Null);
        Assert.That(await Primary.ScalarAsync<int?>("SELECT NULL::int"), Is.Null);
        Assert.That(await Primary.ScalarAsync<string?>("SELECT 'x' WHERE false"), Is.Null);
        Assert.ThrowsAsync<InvalidOperationException>(async () => await Primary.ScalarAsync<int>("SELECT NULL::int"));

        // Fresh, non-pooled sessions: each call is a new backend.
        var first = await Primary.ScalarAsync<int>("SELECT pg_backend_pid()");
        var second = await Primary.ScalarAsync<int>("SELECT pg_backend_pid()");
        Assert.That(second, Is.Not.EqualTo(first));
    }

    [Test]
    public void PauseReplayAsync_on_the_primary_fails()
    {
        var exception = Assert.ThrowsAsync<PostgresException>(async () => await Primary.PauseReplayAsync());

        Assert.That(exception!.MessageText, Does.Contain("recovery is not in progress"));
    }

    [Test]
    public async Task PromoteAsync_turns_the_standby_into_a_writable_primary()
    {
        await using var set = await PostgresReplicaSet.StartAsync(standbys: 1);
        await set.Primary.ExecuteAsync("CREATE TABLE failover_items (id int PRIMARY KEY)");
        await set.WaitForReplayAsync(set.Standby);

        await set.Primary.StopAsync(StopMode.Immediate);
        var watch = Stopwatch.StartNew();
        await set.Standby.PromoteAsync();
        watch.Stop();

        Assert.That(await set.Standby.ScalarAsync<bool>("SELECT pg_is_in_recovery()"), Is.False);
        await set.Standby.ExecuteAsync("INSERT INTO failover_items VALUES (1)");
        Assert.That(await set.Standby.ScalarAsync<long>("SELECT count(*) FROM failover_items"), Is.EqualTo(1));
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)));

        // The multi-host string follows the failover by itself.
        var builder = new NpgsqlConnectionStringBuilder(set.MultiHostPrimaryConnectionString) { Pooling = false };
        await using var dataSource = new NpgsqlDataSourceBuilder(builder.ConnectionString).BuildMultiHost();
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = new NpgsqlCommand("SELECT inet_server_port()", connection);
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(set.Standby.Port));
    }

    private async Task<long> CountOnStandby(int id) =>
        await Standby.ScalarAsync<long>($"SELECT count(*) FROM server_items WHERE id = {id}");

    /// <summary>Waits until the standby has received (not necessarily replayed) all WAL the primary has written.</summary>
    private async Task WaitUntilReceivedAsync()
    {
        var target = await Primary.ScalarAsync<string>("SELECT pg_current_wal_lsn()::text");
        var deadline = Stopwatch.StartNew();
        while (!await Standby.ScalarAsync<bool>($"SELECT pg_last_wal_receive_lsn() >= '{target}'::pg_lsn"))
        {
            Assert.That(deadline.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), "the standby did not receive the WAL");
            await Task.Delay(10);
        }
    }
}
