using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Routing;

/// <summary>
/// EF's connection to the primary opens only when a command needs the primary: reads a replica serves hold none (counted
/// from the primary's side, by application name), while the application's own <c>Database.OpenConnection()</c> still gets a
/// real primary session for Dapper-style and bulk work.
/// </summary>
public sealed class PrimaryConnectionTests
{
    private const int Readers = 32;

    private static PostgresReplicaSet Servers => RoutingServers.Set;

    [TestCase(ConnectionMode.DataSource, false)]
    [TestCase(ConnectionMode.DataSource, true)]
    [TestCase(ConnectionMode.ConnectionString, true)]
    public async Task Concurrent_replica_reads_hold_no_primary_connection(ConnectionMode mode, bool async)
    {
        var application = $"efr-primary-{Guid.NewGuid():N}"[..30];
        await using var cluster = await CreateClusterAsync(application);

        var (primary, standby) = await HoldReadersOpenAsync(cluster, mode, async, application);

        // The monitor's probe may hold one; EF's connections none.
        Assert.That(primary, Is.LessThanOrEqualTo(2), $"primary client connections while {Readers} replica reads were open");
        Assert.That(standby, Is.GreaterThanOrEqualTo(Readers), "the reads were not all open on the standby");
    }

    [Test]
    public async Task With_the_interceptors_alone_EF_still_holds_a_primary_connection_per_read()
    {
        // The contrast that shows the count above can fail: without the library's EF services, EF opens (rents) its primary
        // connection before it creates each reader's command, and holds it while the replica's reader is open.
        var application = $"efr-primary-{Guid.NewGuid():N}"[..30];
        await using var cluster = await CreateClusterAsync(application);

        var (primary, _) = await HoldReadersOpenAsync(cluster, ConnectionMode.InterceptorsOnly, async: true, application);

        Assert.That(primary, Is.GreaterThanOrEqualTo(Readers));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task OpenConnection_gives_the_application_a_real_primary_session(bool async)
    {
        await using var cluster = await TestCluster.CreateAsync(Servers);
        await using var context = cluster.NewContext();

        if (async)
        {
            await context.Database.OpenConnectionAsync();
        }
        else
        {
            context.Database.OpenConnection();
        }

        var connection = (NpgsqlConnection)context.Database.GetDbConnection();
        Assert.That(connection.State, Is.EqualTo(System.Data.ConnectionState.Open));

        // Session work on the raw connection, as Dapper, temp tables and bulk copy do.
        await using (var create = new NpgsqlCommand("CREATE TEMP TABLE lazy_probe (id int)", connection))
        {
            await create.ExecuteNonQueryAsync();
        }

        await using (var import = await connection.BeginBinaryImportAsync("COPY lazy_probe (id) FROM STDIN (FORMAT BINARY)"))
        {
            await import.StartRowAsync();
            await import.WriteAsync(7);
            await import.CompleteAsync();
        }

        await using (var check = new NpgsqlCommand("SELECT count(*) FROM lazy_probe WHERE NOT pg_is_in_recovery() AND inet_server_port() = @port", connection))
        {
            check.Parameters.AddWithValue("port", Servers.Primary.Port);
            Assert.That(await check.ExecuteScalarAsync(), Is.EqualTo(1L));
        }

        // An EF query sent to the primary runs on that same open session (the library cannot see session work done on the raw
        // connection, so reads that depend on it say so with UsePrimary).
        var onSession = context.Database.SqlQueryRaw<int>("SELECT id AS \"Value\" FROM lazy_probe").UsePrimary();
        var fromEf = async ? await onSession.SingleAsync() : onSession.Single();
        Assert.That(fromEf, Is.EqualTo(7));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task A_read_that_needs_the_primary_opens_EFs_connection_then(bool async)
    {
        await using var cluster = await TestCluster.CreateAsync(Servers);
        await using var context = cluster.NewContext();

        var side = async
            ? await context.WhereAmI().UsePrimary().SingleAsync()
            : context.WhereAmI().UsePrimary().Single();

        Assert.That(side.Port, Is.EqualTo(Servers.Primary.Port));
        Assert.That(side.InRecovery, Is.False);
        Assert.That(context.Database.GetDbConnection().State, Is.EqualTo(System.Data.ConnectionState.Closed), "EF closes what it opened");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Replica_reads_then_a_write_in_one_context_work_with_a_deferred_connection(bool async)
    {
        await using var cluster = await TestCluster.CreateAsync(Servers);
        await using var context = cluster.NewContext();

        var query = context.People.OrderBy(p => p.Id).Take(3);
        var first = async ? await query.ToListAsync() : query.ToList();
        var side = async ? await context.WhereAmI().SingleAsync() : context.WhereAmI().Single();
        context.People.Add(new Person { Name = $"lazy-{Guid.NewGuid():N}", Mood = Mood.Meh });
        var saved = async ? await context.SaveChangesAsync() : context.SaveChanges();

        Assert.That(first, Is.Not.Empty);
        Assert.That(side.InRecovery, Is.True);
        Assert.That(saved, Is.EqualTo(1));
    }

    private static async Task<TestCluster> CreateClusterAsync(string application)
        => await TestCluster.CreateAsync(Servers, options =>
        {
            options.Primary = new NpgsqlConnectionStringBuilder(options.Primary) { ApplicationName = application }.ConnectionString;
            foreach (var replica in options.Replicas)
            {
                replica.ConnectionString = new NpgsqlConnectionStringBuilder(replica.ConnectionString) { ApplicationName = application }.ConnectionString;
            }
        }, maxPoolSize: Readers + 8);

    /// <summary>Opens <see cref="Readers"/> replica reads at once, counts each server's client connections, then lets them finish.</summary>
    private static async Task<(long Primary, long Standby)> HoldReadersOpenAsync(TestCluster cluster, ConnectionMode mode, bool async, string application)
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = new CountdownEvent(Readers);
        var readers = Enumerable.Range(0, Readers).Select(_ => Task.Run(async () =>
        {
            await using var context = cluster.NewContext(mode);
            if (async)
            {
                await foreach (var _ in context.People.AsNoTracking().AsAsyncEnumerable())
                {
                    started.Signal();
                    await release.Task;
                    break;
                }
            }
            else
            {
                foreach (var _ in context.People.AsNoTracking())
                {
                    started.Signal();
                    release.Task.Wait();
                    break;
                }
            }
        })).ToArray();

        try
        {
            Assert.That(started.Wait(TimeSpan.FromSeconds(60)), Is.True, "the readers did not all start");
            var count = $"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{application}' AND backend_type = 'client backend'";
            return (await Servers.Primary.ScalarAsync<long>(count), await Servers.Standby.ScalarAsync<long>(count));
        }
        finally
        {
            release.SetResult();
            await Task.WhenAll(readers);
        }
    }
}
