using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;

namespace EfReplicaInterceptor.IntegrationTests.Routing;

/// <summary>10,000 mixed commands from concurrent contexts leave no connection behind on either server.</summary>
[NonParallelizable]
public sealed class ConnectionLeakTests : RoutingTestBase
{
    private const int PoolSize = 10;
    private const int Workers = 8;
    private const int CommandsPerWorker = 1250;

    private const string ApplicationName = "efreplica-leak-test";

    protected override Task<TestCluster> CreateCluster() => TestCluster.CreateAsync(Servers, options =>
    {
        options.Primary = Named(options.Primary!);
        foreach (var replica in options.Replicas)
        {
            replica.ConnectionString = Named(replica.ConnectionString!);
        }
    }, maxPoolSize: PoolSize);

    private static string Named(string connectionString)
        => new Npgsql.NpgsqlConnectionStringBuilder(connectionString) { ApplicationName = ApplicationName }.ConnectionString;

    [Test]
    public async Task Ten_thousand_mixed_commands_leak_no_connection()
    {
        var primaryBefore = await Backends(Servers.Primary);
        var standbyBefore = await Backends(Servers.Standby);
        long peakPrimary = 0, peakStandby = 0, commands = 0;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peakPrimary = Math.Max(peakPrimary, await Backends(Servers.Primary) - primaryBefore);
                peakStandby = Math.Max(peakStandby, await Backends(Servers.Standby) - standbyBefore);
                await Task.Delay(20);
            }
        });

        var workers = Enumerable.Range(0, Workers).Select(worker => Task.Run(async () =>
        {
            var random = new Random(worker);
            var done = 0;
            while (done < CommandsPerWorker)
            {
                await using var context = Cluster.NewContext();
                var async = random.Next(2) == 0;
                switch (random.Next(10))
                {
                    case < 6:
                        await WhereAmI(context, async);
                        done++;
                        break;
                    case 6:
                        await context.Database.SqlQueryRaw<int>("SELECT inet_server_port() AS \"Value\"").SingleAsync();
                        done++;
                        break;
                    case 7:
                        context.People.Add(new Person { Name = $"leak-{worker}-{done}" });
                        await context.SaveChangesAsync();
                        await WhereAmI(context, async); // after-write read on the primary
                        done += 2;
                        break;
                    case 8:
                        await using (var transaction = await context.Database.BeginTransactionAsync())
                        {
                            await WhereAmI(context, async);
                            await transaction.CommitAsync();
                        }

                        done++;
                        break;
                    default:
                        await context.Database.OpenConnectionAsync();
                        await WhereAmI(context, async);
                        await context.Database.ExecuteSqlRawAsync("SET application_name = 'leak'");
                        await WhereAmI(context, async);
                        await context.Database.CloseConnectionAsync();
                        done += 3;
                        break;
                }
            }

            Interlocked.Add(ref commands, done);
        })).ToArray();
        await Task.WhenAll(workers);
        await sampling.CancelAsync();
        await sampler;

        var (primaryOpen, primaryBusy) = await Pool(Servers.Primary);
        var (standbyOpen, standbyBusy) = await Pool(Servers.Standby);
        TestContext.Out.WriteLine($"{commands} commands; peak extra backends: primary {peakPrimary}, standby {peakStandby}; " +
                                  $"pool connections after: primary {primaryOpen} ({primaryBusy} busy), standby {standbyOpen} ({standbyBusy} busy)");
        Assert.Multiple(() =>
        {
            Assert.That(commands, Is.GreaterThanOrEqualTo(Workers * CommandsPerWorker));
            Assert.That(peakPrimary, Is.LessThanOrEqualTo(PoolSize), "primary backends beyond the pool size");
            Assert.That(peakStandby, Is.LessThanOrEqualTo(PoolSize), "standby backends beyond the pool size");
            Assert.That(primaryBusy, Is.Zero, "primary pool not idle: a connection was left in use");
            Assert.That(standbyBusy, Is.Zero, "standby pool not idle: a connection was left in use");
            Assert.That(standbyOpen, Is.Positive, "the replica served reads");
        });
        await Cluster.Cluster.DisposeAsync();
        Assert.That(await SettledConnections(Servers.Primary), Is.Zero, "primary connections left after the cluster was disposed");
        Assert.That(await SettledConnections(Servers.Standby), Is.Zero, "standby connections left after the cluster was disposed");
    }

    /// <summary>A backend ends a moment after its socket closes: poll briefly until the library has none left.</summary>
    private static async Task<long> SettledConnections(EfReplicaInterceptor.Testing.PostgresServer server)
    {
        var (open, _) = await Pool(server);
        for (var i = 0; i < 50 && open != 0; i++)
        {
            await Task.Delay(100);
            (open, _) = await Pool(server);
        }

        return open;
    }

    /// <summary>The library's connections to <paramref name="server"/>, and how many are doing anything but waiting idle.</summary>
    private static async Task<(long Open, long Busy)> Pool(EfReplicaInterceptor.Testing.PostgresServer server)
    {
        var open = await server.ScalarAsync<long>($"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{ApplicationName}'");
        var busy = await server.ScalarAsync<long>($"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{ApplicationName}' AND state <> 'idle'");
        return (open, busy);
    }

    private static async Task<long> Backends(EfReplicaInterceptor.Testing.PostgresServer server)
        => await server.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()");
}
