using System.Diagnostics;
using System.Text.RegularExpressions;
using EfReplicaInterceptor.Testing;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Harness;

/// <summary>
/// The set as a whole, proven from the servers' side. Tests that only read share one set; tests
/// that break or dispose a set start their own.
/// </summary>
[Parallelizable(ParallelScope.Fixtures)]
public sealed partial class PostgresReplicaSetTests
{
    private PostgresReplicaSet _set = null!;

    [OneTimeSetUp]
    public async Task StartSet()
    {
        _set = await PostgresReplicaSet.StartAsync(standbys: 1);
        await _set.Primary.ExecuteAsync("CREATE TABLE harness_items (id int PRIMARY KEY, note text)");

        // Tests pause replay on the standby; the table must be there before they do.
        await _set.WaitForReplayAsync(_set.Standby);
    }

    [OneTimeTearDown]
    public async Task StopSet() => await _set.DisposeAsync();

    [Test]
    public async Task Primary_is_writable_and_standby_is_a_hot_standby_reached_with_its_connection_string()
    {
        Assert.That(_set.IsExternal, Is.False);
        Assert.That(await InRecovery(_set.Primary.ConnectionString), Is.False, "primary");
        Assert.That(await InRecovery(_set.Standby.ConnectionString), Is.True, "standby");
        Assert.That(_set.Standbys[0], Is.SameAs(_set.Standby));
        Assert.That(_set.Standby.Name, Is.EqualTo("standby1"));
        Assert.That(_set.Primary.Name, Is.EqualTo("primary"));

        // The connection string goes over TCP to the advertised port, with a password.
        foreach (var server in new[] { _set.Primary, _set.Standby })
        {
            var builder = new NpgsqlConnectionStringBuilder(server.ConnectionString);
            Assert.That(builder.Host, Is.EqualTo("127.0.0.1"));
            Assert.That(builder.Database, Is.EqualTo(PostgresReplicaSetOptions.DefaultDatabaseName));
            Assert.That(builder.Password, Is.Not.Empty);
            Assert.That(await server.ScalarAsync<int>("SELECT inet_server_port()"), Is.EqualTo(server.Port), server.Name);
            Assert.That(await server.ScalarAsync<string>("SELECT current_database()"), Is.EqualTo("efreplica"));
            Assert.That(await server.ScalarAsync<bool>("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"), Is.True);
        }
    }

    [Test]
    public async Task A_wrong_password_is_rejected()
    {
        var builder = new NpgsqlConnectionStringBuilder(_set.Primary.ConnectionString) { Password = "wrong", Pooling = false };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);

        var exception = Assert.ThrowsAsync<PostgresException>(async () => await connection.OpenAsync());

        Assert.That(exception!.SqlState, Is.EqualTo(PostgresErrorCodes.InvalidPassword));
    }

    [Test]
    public async Task Standby_streams_from_the_primary()
    {
        Assert.That(
            await _set.Primary.ScalarAsync<string>("SELECT state FROM pg_stat_replication WHERE application_name = 'standby1'"),
            Is.EqualTo("streaming"));
        Assert.That(await _set.Standby.ScalarAsync<string>("SELECT status FROM pg_stat_wal_receiver"), Is.EqualTo("streaming"));
        Assert.That(
            await _set.Standby.ScalarAsync<string>("SELECT current_setting('primary_conninfo')"),
            Does.Contain($"port={_set.Primary.Port}").And.Not.Contain("password"));
    }

    [Test]
    public async Task A_row_committed_on_the_primary_is_visible_on_the_standby_after_WaitForReplayAsync()
    {
        await _set.Primary.ExecuteAsync("INSERT INTO harness_items VALUES (1, 'replicated')");

        await _set.WaitForReplayAsync(_set.Standby);

        Assert.That(await _set.Standby.ScalarAsync<string>("SELECT note FROM harness_items WHERE id = 1"), Is.EqualTo("replicated"));
        Assert.That(
            await _set.Standby.ScalarAsync<bool>($"SELECT pg_last_wal_replay_lsn() >= '{await _set.Primary.ScalarAsync<string>("SELECT pg_current_wal_lsn()::text")}'::pg_lsn"),
            Is.True);
    }

    [Test]
    public async Task WaitForReplayAsync_times_out_with_the_standby_state_while_replay_is_paused()
    {
        await _set.Standby.PauseReplayAsync();
        try
        {
            await _set.Primary.ExecuteAsync("INSERT INTO harness_items VALUES (2, 'held back')");
            var watch = Stopwatch.StartNew();

            var exception = Assert.ThrowsAsync<TimeoutException>(
                async () => await _set.WaitForReplayAsync(_set.Standby, TimeSpan.FromMilliseconds(300)));

            Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)));
            Assert.That(exception!.Message, Does.Contain("standby1").And.Contain("paused").And.Contain("0.3 s"));
            Assert.That(exception.Message, Does.Not.Contain(new NpgsqlConnectionStringBuilder(_set.Primary.ConnectionString).Password));
        }
        finally
        {
            await _set.Standby.ResumeReplayAsync();
        }

        await _set.WaitForReplayAsync(_set.Standby);
        Assert.That(await _set.Standby.ScalarAsync<long>("SELECT count(*) FROM harness_items WHERE id = 2"), Is.EqualTo(1));
    }

    [Test]
    public async Task WaitForReplayAsync_refuses_a_server_that_is_not_in_recovery()
    {
        var exception = Assert.ThrowsAsync<InvalidOperationException>(async () => await _set.WaitForReplayAsync(_set.Primary));

        Assert.That(exception!.Message, Does.Contain("not in recovery"));
    }

    [Test]
    public async Task A_write_on_the_standby_fails_as_read_only()
    {
        var exception = Assert.ThrowsAsync<PostgresException>(
            async () => await _set.Standby.ExecuteAsync("INSERT INTO harness_items VALUES (3, 'nope')"));

        Assert.That(exception!.SqlState, Is.EqualTo(PostgresErrorCodes.ReadOnlySqlTransaction));
    }

    [Test]
    public async Task MultiHostPrimaryConnectionString_lists_every_server_and_connects_to_the_primary()
    {
        var builder = new NpgsqlConnectionStringBuilder(_set.MultiHostPrimaryConnectionString) { Pooling = false };

        Assert.That(builder.TargetSessionAttributes, Is.EqualTo("primary"));
        foreach (var server in new[] { _set.Primary }.Concat(_set.Standbys))
        {
            Assert.That(builder.Host, Does.Contain($"127.0.0.1:{server.Port}"));
        }

        await using var dataSource = new NpgsqlDataSourceBuilder(builder.ConnectionString).BuildMultiHost();
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = new NpgsqlCommand("SELECT inet_server_port()", connection);
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(_set.Primary.Port));
    }

    [Test]
    public async Task Servers_live_in_the_harness_root_with_their_log_in_the_data_directory()
    {
        foreach (var server in new[] { _set.Primary, _set.Standby })
        {
            Assert.That(server.DataDirectory, Does.StartWith("/tmp/efreplica-pg"));
            Assert.That(await server.ScalarAsync<string>("SHOW data_directory"), Is.EqualTo(server.DataDirectory));
            Assert.That(File.Exists(Path.Combine(server.DataDirectory, "server.log")), Is.True);
            Assert.That(server.IsRunning, Is.True);
        }

        Assert.That(
            File.Exists(Path.Combine(Path.GetDirectoryName(_set.Primary.DataDirectory)!, "owner")),
            Is.True,
            "owner marker for leftover clean-up");
    }

    [Test]
    public async Task AddStandbyAsync_adds_another_streaming_standby()
    {
        var before = _set.Standbys.Count;

        var added = await _set.AddStandbyAsync();

        Assert.That(_set.Standbys, Has.Count.EqualTo(before + 1));
        Assert.That(_set.Standbys[^1], Is.SameAs(added));
        Assert.That(added.Name, Is.EqualTo($"standby{before + 1}"));
        Assert.That(added.Port, Is.Not.EqualTo(_set.Primary.Port).And.Not.EqualTo(_set.Standby.Port));
        Assert.That(await added.ScalarAsync<bool>("SELECT pg_is_in_recovery()"), Is.True);
        Assert.That(
            await _set.Primary.ScalarAsync<string>($"SELECT state FROM pg_stat_replication WHERE application_name = '{added.Name}'"),
            Is.EqualTo("streaming"));
        Assert.That(
            await _set.Primary.ScalarAsync<long>("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"),
            Is.EqualTo(before + 1));

        await _set.Primary.ExecuteAsync("INSERT INTO harness_items VALUES (10, 'to every standby')");
        await _set.WaitForReplayAsync(added);
        Assert.That(await added.ScalarAsync<string>("SELECT note FROM harness_items WHERE id = 10"), Is.EqualTo("to every standby"));
    }

    [Test]
    public async Task External_servers_are_used_as_given_and_process_control_is_not_supported()
    {
        var external = await PostgresReplicaSet.ConnectExternalAsync(
            _set.Primary.ConnectionString,
            [_set.Standby.ConnectionString],
            1,
            new PostgresReplicaSetOptions(),
            CancellationToken.None);
        await using (external)
        {
            Assert.That(external.IsExternal, Is.True);
            Assert.That(external.Primary.Port, Is.EqualTo(_set.Primary.Port));
            Assert.That(external.Standby.Port, Is.EqualTo(_set.Standby.Port));
            Assert.That(external.Primary.DataDirectory, Is.Empty);

            var stop = Assert.ThrowsAsync<NotSupportedException>(async () => await external.Primary.StopAsync(StopMode.Immediate));
            Assert.That(stop!.Message, Does.Contain("EFREPLICA_TEST_PRIMARY"));
            Assert.ThrowsAsync<NotSupportedException>(async () => await external.Standby.PromoteAsync());
            Assert.ThrowsAsync<NotSupportedException>(async () => await external.Standby.StartAsync());
            Assert.ThrowsAsync<NotSupportedException>(async () => await external.AddStandbyAsync());

            await external.Primary.ExecuteAsync("INSERT INTO harness_items VALUES (20, 'through external')");
            await external.WaitForReplayAsync(external.Standby);
            Assert.That(await external.Standby.ScalarAsync<long>("SELECT count(*) FROM harness_items WHERE id = 20"), Is.EqualTo(1));
        }

        Assert.That(_set.Primary.IsRunning, Is.True, "disposing an external set leaves the servers alone");
        Assert.That(await _set.Primary.ScalarAsync<int>("SELECT 1"), Is.EqualTo(1));

        var swapped = Assert.ThrowsAsync<InvalidOperationException>(async () => await PostgresReplicaSet.ConnectExternalAsync(
            _set.Standby.ConnectionString,
            [_set.Primary.ConnectionString],
            1,
            new PostgresReplicaSetOptions(),
            CancellationToken.None));
        Assert.That(swapped!.Message, Does.Contain("EFREPLICA_TEST_PRIMARY").And.Contain("recovery"));
    }

    [Test]
    public async Task DisposeAsync_stops_every_server_and_deletes_the_folder_and_is_idempotent()
    {
        var set = await PostgresReplicaSet.StartAsync(standbys: 1);
        var folder = Path.GetDirectoryName(set.Primary.DataDirectory)!;
        var postmasters = new[] { set.Primary, set.Standby }.Select(server => PostmasterId(server.DataDirectory)).ToList();
        var ports = new[] { set.Primary.Port, set.Standby.Port };

        await set.DisposeAsync();
        await set.DisposeAsync();

        Assert.That(Directory.Exists(folder), Is.False, folder);
        foreach (var id in postmasters)
        {
            Assert.That(IsLivePostgres(id), Is.False, $"postmaster {id} still running");
        }

        foreach (var port in ports)
        {
            var builder = new NpgsqlConnectionStringBuilder(_set.Primary.ConnectionString) { Port = port, Pooling = false, Timeout = 2 };
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            Assert.ThrowsAsync<NpgsqlException>(async () => await connection.OpenAsync(), $"port {port} still accepts connections");
        }

        Assert.ThrowsAsync<ObjectDisposedException>(async () => await set.AddStandbyAsync());
    }

    [Test]
    public void A_failed_start_reports_the_server_log_and_leaves_nothing_behind()
    {
        var options = new PostgresReplicaSetOptions { ExtraConfiguration = { "efreplica_no_such_setting = 1" } };

        var exception = Assert.ThrowsAsync<InvalidOperationException>(async () => await PostgresReplicaSet.StartAsync(1, options));

        Assert.That(exception!.Message, Does.Contain("'primary'").And.Contain("unrecognized configuration parameter").And.Contain("server.log"));
        Assert.That(exception.Message, Does.Not.Contain(new NpgsqlConnectionStringBuilder(_set.Primary.ConnectionString).Password));
        var dataDirectory = DataDirectoryInMessage().Match(exception.Message);
        Assert.That(dataDirectory.Success, Is.True, exception.Message);
        Assert.That(Directory.Exists(Path.GetDirectoryName(dataDirectory.Value)), Is.False, "the failed set's folder was removed");
    }

    [Test]
    public async Task StartAsync_removes_sets_whose_owning_process_is_gone()
    {
        var abandoned = await PostgresReplicaSet.StartAsync(standbys: 0);
        var folder = Path.GetDirectoryName(abandoned.Primary.DataDirectory)!;
        var postmaster = PostmasterId(abandoned.Primary.DataDirectory);
        try
        {
            // Pretend the set belongs to a test process that crashed.
            using (var finished = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!)
            {
                await finished.WaitForExitAsync();
                await File.WriteAllTextAsync(Path.Combine(folder, "owner"), $"{finished.Id} 0\n");
            }

            await using var next = await PostgresReplicaSet.StartAsync(standbys: 0);

            Assert.That(Directory.Exists(folder), Is.False, folder);
            Assert.That(IsLivePostgres(postmaster), Is.False, $"abandoned postmaster {postmaster} still running");
            Assert.That(await next.Primary.ScalarAsync<int>("SELECT 1"), Is.EqualTo(1));
        }
        finally
        {
            await abandoned.DisposeAsync();
        }
    }

    [GeneratedRegex(@"/tmp/efreplica-pg[^\s)]*/primary")]
    private static partial Regex DataDirectoryInMessage();

    private static async Task<bool> InRecovery(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT pg_is_in_recovery()", connection);
        return (bool)(await command.ExecuteScalarAsync())!;
    }

    internal static int PostmasterId(string dataDirectory) =>
        int.Parse(File.ReadLines(Path.Combine(dataDirectory, "postmaster.pid")).First(), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Alive and not a zombie (exited children of an init that does not reap stay as zombies).</summary>
    internal static bool IsLivePostgres(int processId)
    {
        var stat = $"/proc/{processId}/stat";
        if (!File.Exists(stat))
        {
            return false;
        }

        var text = File.ReadAllText(stat);
        var state = text[(text.LastIndexOf(')') + 2)..].Split(' ')[0];
        return state is not ("Z" or "X");
    }
}
