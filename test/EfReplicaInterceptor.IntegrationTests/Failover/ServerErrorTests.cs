using System.Diagnostics;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Failover;

/// <summary>
/// Each row of the failover table (docs/failover-and-errors.md) produced for real on a primary and a streaming hot standby: what the caller sees,
/// where the read ran (asked of the server), whether the replica stayed in rotation and whether its pooled session survived.
/// The errors that damage a server (a backend killed, the standby stopped) get a server set of their own.
/// </summary>
[NonParallelizable]
public sealed class ServerErrorTests
{
    private const int ReplicaFailedForCommand = 1002;
    private const int PrimaryReadFailed = 1005;
    private const int WriteFailedOver = 1006;
    private const int ReplicaLeftRotation = 2000;

    // A read whose $1 has no value: the standby parses it and refuses the Bind with 08P01; the session survives.
    private const string UnboundParameter = "SELECT id AS \"Value\" FROM products WHERE id = $1";

    private PostgresReplicaSet _servers = null!;

    /// <summary>Which server ran a query and in which session, asked of the server.</summary>
    public sealed class Session
    {
        public int Port { get; set; }

        public bool InRecovery { get; set; }

        public int Pid { get; set; }
    }

    [OneTimeSetUp]
    public async Task StartServers()
    {
        _servers = await ShopServers.StartAsync();
        await _servers.Primary.ExecuteAsync("""
            CREATE TABLE error_visits (id serial PRIMARY KEY, written_on_port int NOT NULL DEFAULT inet_server_port());
            CREATE FUNCTION public.record_error_visit() RETURNS int LANGUAGE sql VOLATILE AS $$ INSERT INTO error_visits DEFAULT VALUES RETURNING 1 $$;
            CREATE TABLE conflicts (id int PRIMARY KEY);
            INSERT INTO conflicts VALUES (1);
            """);
        await _servers.WaitForReplayAsync(_servers.Standby);
    }

    [OneTimeTearDown]
    public async Task StopServers() => await _servers.DisposeAsync();

    private static async Task<Session> WhoAmI(ShopContext context, bool async)
    {
        var query = context.Database.SqlQueryRaw<Session>("SELECT inet_server_port() AS \"Port\", pg_is_in_recovery() AS \"InRecovery\", pg_backend_pid() AS \"Pid\"");
        return async ? await query.SingleAsync() : query.Single();
    }

    private static int[] Events(TestCluster cluster) => cluster.Recorder.AllEvents.Select(e => e.EventId).ToArray();

    private static string[] Failures(TestCluster cluster) => cluster.Recorder.AllEvents.Where(e => e.EventId == ReplicaFailedForCommand).Select(e => e.Message).ToArray();

    [TestCase(false)]
    [TestCase(true)]
    public async Task A_protocol_violation_08P01_is_thrown_once_as_the_servers_error_and_the_replica_stays(bool async)
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options => options.HealthCheckInterval = TimeSpan.FromMinutes(1));
        await using var context = cluster.NewContext();
        Assert.That((await WhoAmI(context, async)).InRecovery, Is.True, "the warm-up read runs on the standby");

        var query = context.Database.SqlQueryRaw<int>(UnboundParameter);
        var error = async ? Assert.CatchAsync(() => query.ToListAsync()) : Assert.Catch(() => query.ToList());

        var after = await WhoAmI(context, async);
        Assert.Multiple(() =>
        {
            Assert.That(error, Is.TypeOf<PostgresException>().With.Property(nameof(PostgresException.SqlState)).EqualTo("08P01"), "the server's own error, not a failover");
            Assert.That((after.Port, after.InRecovery), Is.EqualTo((_servers.Standby.Port, true)), "the next read still runs on the standby");
            Assert.That(cluster.Cluster.Replicas[0].IsAdmitted, Is.True, "the replica stays in rotation");
            Assert.That(Events(cluster), Has.None.EqualTo(ReplicaFailedForCommand).And.None.EqualTo(PrimaryReadFailed).And.None.EqualTo(WriteFailedOver).And.None.EqualTo(ReplicaLeftRotation),
                "not retried (so run once), not translated, no pool cleared (a clear only follows these events), nothing left the rotation");
        });
    }

    [Test]
    public async Task A_protocol_violation_08P01_on_EFs_own_connection_in_a_transaction_is_the_servers_error_too()
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options => options.HealthCheckInterval = TimeSpan.FromMinutes(1));
        await using var context = cluster.NewContext();
        await using var transaction = await context.Database.BeginTransactionAsync();

        var error = Assert.CatchAsync(() => context.Database.SqlQueryRaw<int>(UnboundParameter).ToListAsync());

        Assert.Multiple(() =>
        {
            Assert.That(error, Is.TypeOf<PostgresException>().With.Property(nameof(PostgresException.SqlState)).EqualTo("08P01"),
                "not an EfReplicaFailoverException, although Npgsql drops the connection after it");
            Assert.That(Events(cluster), Has.None.EqualTo(WriteFailedOver).And.None.EqualTo(ReplicaLeftRotation));
        });
    }

    [Test]
    public async Task Measured_08P01_at_Bind_is_an_ERROR_after_which_Npgsql_drops_its_connection_and_the_server_serves_the_next_one()
    {
        await using var dataSource = NpgsqlDataSource.Create(_servers.Standby.ConnectionString);
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var bad = new NpgsqlCommand(UnboundParameter, connection);

        var error = Assert.CatchAsync<PostgresException>(() => bad.ExecuteReaderAsync());

        // What the classification leans on: the server's verdict (ERROR, not FATAL). Npgsql's state is printed, not relied on.
        TestContext.Out.WriteLine($"08P01 {error!.InvariantSeverity}; the connection afterwards: {connection.FullState}");
        Assert.That((error.SqlState, error.InvariantSeverity, error.IsTransient), Is.EqualTo(("08P01", "ERROR", false)));
        await using var next = await dataSource.OpenConnectionAsync();
        await using var probe = new NpgsqlCommand("SELECT pg_is_in_recovery()", next);
        Assert.That(await probe.ExecuteScalarAsync(), Is.True, "the standby serves the next command");
    }

    [Test]
    public async Task A_bad_query_every_100_ms_moves_none_of_another_readers_reads_to_the_primary()
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options => options.HealthCheckInterval = TimeSpan.FromMilliseconds(200));
        int onStandby = 0, onPrimary = 0, badSeen = 0;
        var otherErrors = new List<string>();
        using var stop = new CancellationTokenSource();
        var reader = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await using var context = cluster.NewContext();
                var side = await context.WhereAmI().SingleAsync();
                if (side.InRecovery)
                {
                    onStandby++;
                }
                else
                {
                    onPrimary++;
                }
            }
        });

        for (var i = 0; i < 15; i++)
        {
            await using var context = cluster.NewContext();
            try
            {
                await context.Database.SqlQueryRaw<int>(UnboundParameter).ToListAsync();
                otherErrors.Add("the bad query succeeded");
            }
            catch (PostgresException error) when (error.SqlState == "08P01")
            {
                badSeen++;
            }
            catch (Exception error)
            {
                otherErrors.Add($"{error.GetType().Name}: {error.Message}");
            }

            await Task.Delay(100);
        }

        await stop.CancelAsync();
        await reader;

        var total = onStandby + onPrimary;
        TestContext.Out.WriteLine($"{badSeen} bad queries; the other reader: {total} reads, {onStandby} on the standby, {onPrimary} on the primary");
        Assert.Multiple(() =>
        {
            Assert.That(badSeen, Is.EqualTo(15), "every bad query got the server's 08P01");
            Assert.That(otherErrors, Is.Empty);
            Assert.That(total, Is.GreaterThan(20), "the other reader ran");
            Assert.That(onPrimary, Is.LessThanOrEqualTo(total * 5 / 100), "at most 5 % of the other reader's reads moved to the primary");
            Assert.That(Events(cluster), Has.None.EqualTo(ReplicaLeftRotation).And.None.EqualTo(WriteFailedOver));
        });
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task An_idle_session_the_standby_ended_57P05_is_retried_elsewhere_and_the_replica_stays(bool async)
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options =>
        {
            options.HealthCheckInterval = TimeSpan.FromMinutes(1); // the monitor's own probes stay out of the way
            var replica = options.Replicas[0];
            replica.ConnectionString = new NpgsqlConnectionStringBuilder(replica.ConnectionString) { Options = "-c idle_session_timeout=300" }.ConnectionString;
        });
        await using var context = cluster.NewContext();

        var first = await WhoAmI(context, async);
        // The pooled standby session expires: wait until the standby has ended it (idle_session_timeout), bounded, rather
        // than for a fixed time that a loaded machine may not honour.
        var clock = Stopwatch.StartNew();
        while (await _servers.Standby.ScalarAsync<long>($"SELECT count(*) FROM pg_stat_activity WHERE pid = {first.Pid}") != 0)
        {
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(15)), "the standby ends the idle session");
            await Task.Delay(50);
        }

        var expired = await WhoAmI(context, async);
        var fresh = await WhoAmI(context, async);

        Assert.Multiple(() =>
        {
            Assert.That(first.InRecovery, Is.True, "the first read ran on the standby");
            Assert.That((expired.Port, expired.InRecovery), Is.EqualTo((_servers.Primary.Port, false)), "the read that met the expired session was run again on the primary");
            Assert.That(Failures(cluster), Has.One.Contains("session-expired"), "the standby reported 57P05 once");
            Assert.That(cluster.Cluster.Replicas[0].IsAdmitted, Is.True, "an expired idle session says nothing about the replica");
            Assert.That(Events(cluster), Has.None.EqualTo(ReplicaLeftRotation));
            Assert.That(fresh.InRecovery, Is.True, "the next read is on the standby again, in a new session");
            Assert.That(fresh.Pid, Is.Not.EqualTo(first.Pid));
        });
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task A_terminated_standby_session_57P01_is_retried_on_the_primary(bool async)
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options => options.HealthCheckInterval = TimeSpan.FromMinutes(1));
        await using var context = cluster.NewContext();
        var first = await WhoAmI(context, async);
        Assert.That(first.InRecovery, Is.True);

        Assert.That(await _servers.Standby.ScalarAsync<bool>($"SELECT pg_terminate_backend({first.Pid})"), Is.True);
        var retried = await WhoAmI(context, async);

        Assert.Multiple(() =>
        {
            Assert.That((retried.Port, retried.InRecovery), Is.EqualTo((_servers.Primary.Port, false)), "the read succeeded on the primary");
            Assert.That(Failures(cluster), Has.One.Contains("connection-lost"), "the standby's session ended under the read (57P01)");
            Assert.That(Events(cluster), Has.One.EqualTo(ReplicaLeftRotation), "the session was ended by the server: the replica leaves until the monitor or a probe lets it back");
        });
    }

    [Test]
    public async Task A_write_the_classifier_took_for_a_read_25006_runs_once_on_the_primary_and_the_replica_stays()
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options => options.HealthCheckInterval = TimeSpan.FromMinutes(1));
        var before = await _servers.Primary.ScalarAsync<long>("SELECT count(*) FROM error_visits");
        await using var context = cluster.NewContext();

        var result = await context.Database.SqlQueryRaw<int>("SELECT record_error_visit() AS \"Value\"").SingleAsync();

        var written = await _servers.Primary.ScalarAsync<long>($"SELECT count(*) FROM error_visits WHERE written_on_port = {_servers.Primary.Port}");
        Assert.Multiple(() =>
        {
            Assert.That(result, Is.EqualTo(1));
            Assert.That(written - before, Is.EqualTo(1), "applied once, on the primary");
            Assert.That(Failures(cluster), Has.One.Contains("read-only"), "the standby refused it with 25006");
            Assert.That(cluster.Cluster.Replicas[0].IsAdmitted, Is.True, "a write sent to a standby says nothing about the standby");
            Assert.That(Events(cluster), Has.None.EqualTo(ReplicaLeftRotation).And.None.EqualTo(WriteFailedOver));
        });
    }

    [Test]
    public async Task A_read_cancelled_by_a_recovery_conflict_40001_is_retried_on_the_primary_and_the_replica_stays()
    {
        await _servers.Standby.ExecuteAsync("ALTER SYSTEM SET max_standby_streaming_delay = 0");
        await _servers.Standby.ExecuteAsync("SELECT pg_reload_conf()");
        try
        {
            await using var cluster = await TestCluster.CreateAsync(_servers, options => options.HealthCheckInterval = TimeSpan.FromMinutes(1));
            await using var context = cluster.NewContext();
            var read = context.Database.SqlQueryRaw<int>("SELECT inet_server_port() AS \"Value\" FROM conflicts, pg_sleep(1.5)").SingleAsync();

            // Once the read holds its lock on the standby, an ACCESS EXCLUSIVE lock replayed from the primary conflicts with it.
            var clock = Stopwatch.StartNew();
            while (await _servers.Standby.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%FROM conflicts, pg_sleep%' AND state = 'active' AND pid <> pg_backend_pid()") == 0)
            {
                Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), "the read never started on the standby");
                await Task.Delay(20);
            }

            await _servers.Primary.ExecuteAsync("BEGIN; LOCK TABLE conflicts IN ACCESS EXCLUSIVE MODE; COMMIT;");
            var port = await read;

            Assert.Multiple(() =>
            {
                Assert.That(port, Is.EqualTo(_servers.Primary.Port), "the cancelled read ran again on the primary");
                Assert.That(Failures(cluster), Has.One.Contains("recovery-conflict"), "the standby cancelled it with 40001");
                Assert.That(cluster.Cluster.Replicas[0].IsAdmitted, Is.True, "a recovery conflict cancels one query; the replica is fine");
                Assert.That(Events(cluster), Has.None.EqualTo(ReplicaLeftRotation));
            });
        }
        finally
        {
            await _servers.Standby.ExecuteAsync("ALTER SYSTEM RESET max_standby_streaming_delay");
            await _servers.Standby.ExecuteAsync("SELECT pg_reload_conf()");
        }
    }

    [Test]
    public async Task A_standby_backend_killed_end_of_stream_is_retried_on_the_primary()
    {
        await using var servers = await ShopServers.StartAsync();
        if (servers.IsExternal)
        {
            Assert.Ignore("Killing a backend needs servers started by the tests.");
        }

        await using var cluster = await TestCluster.CreateAsync(servers, options => options.HealthCheckInterval = TimeSpan.FromMinutes(1));
        await using var context = cluster.NewContext();
        var first = await WhoAmI(context, async: true);
        Assert.That(first.InRecovery, Is.True);

        // SIGKILL: the socket closes with no message (pg_terminate_backend would send 57P01 first).
        using (var backend = Process.GetProcessById(first.Pid))
        {
            backend.Kill();
            await backend.WaitForExitAsync();
        }

        var retried = await WhoAmI(context, async: true);

        Assert.Multiple(() =>
        {
            Assert.That((retried.Port, retried.InRecovery), Is.EqualTo((servers.Primary.Port, false)), "the read succeeded on the primary");
            Assert.That(Failures(cluster), Has.One.Contains("connection-lost"), "the stream ended under the read");
            Assert.That(Events(cluster), Has.One.EqualTo(ReplicaLeftRotation));
        });
    }

    [Test]
    public async Task A_refused_connection_to_a_stopped_standby_is_retried_on_the_primary()
    {
        await using var servers = await ShopServers.StartAsync();
        if (servers.IsExternal)
        {
            Assert.Ignore("Stopping a server needs servers started by the tests.");
        }

        await using var cluster = await TestCluster.CreateAsync(servers, options => options.HealthCheckInterval = TimeSpan.FromMinutes(1));
        await servers.Standby.StopAsync(StopMode.Fast);
        cluster.Cluster.Replicas[0].DataSource.Clear(); // no pooled session left: the read has to open one, and is refused
        await using var context = cluster.NewContext();

        var side = await context.WhereAmI().SingleAsync();

        // The read meets the refusal, unless the monitor's own probe met it first: either way it says "unreachable".
        var left = cluster.Recorder.AllEvents.Where(e => e.EventId == ReplicaLeftRotation).Select(e => e.Message).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That((side.Port, side.InRecovery), Is.EqualTo((servers.Primary.Port, false)), "the read succeeded on the primary");
            Assert.That(Failures(cluster), Has.All.Contains("(unreachable)"), "a read that met the stopped standby was refused");
            Assert.That(left, Has.Length.EqualTo(1).And.All.Contains("unreachable"), "the replica left the rotation, once, as unreachable");
        });
    }
}
