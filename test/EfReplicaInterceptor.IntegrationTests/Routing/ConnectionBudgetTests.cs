using System.Diagnostics;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Routing;

/// <summary>
/// The soak of issues 14 and 22: 64 tasks writing and reading back against a primary with <c>max_connections = 100</c> and
/// Npgsql's default pool size (100), with the README's wiring and with the interceptors alone. Each unit of work holds at
/// most one primary connection at a time: with the library's EF services EF's connection is opened only for its writes
/// (the position capture and any primary read use one of the pool's while EF's is closed); with the interceptors alone EF
/// opens its connection for every command, and the capture and any primary read run on it. So the primary's client
/// connections stay under the limit: no call fails with 53300 "too many clients". Half of the workers read back through a
/// second context in an ambient consistency scope, half through the same context.
/// </summary>
[NonParallelizable]
public sealed class ConnectionBudgetTests
{
    private const int Tasks = 64;

    [TestCase(ConnectionMode.DataSource)]
    [TestCase(ConnectionMode.InterceptorsOnly)]
    public async Task Sixty_four_writers_reading_back_stay_within_max_connections(ConnectionMode mode)
    {
        var options = new PostgresReplicaSetOptions { MaxConnections = 100 };
        await using var servers = await ShopServers.StartAsync(options: options);
        var application = $"efr-soak-{Guid.NewGuid():N}"[..24];
        await using var cluster = await TestCluster.CreateAsync(servers, o =>
        {
            o.Primary = new NpgsqlConnectionStringBuilder(o.Primary) { ApplicationName = application }.ConnectionString;
        }, maxPoolSize: null, recordEvents: false);

        // Every worker runs for 8 s and until it has finished two units of work (a loaded machine may need longer for that),
        // within a bound of 2 minutes; the sampler runs until the last worker ends.
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(8));
        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        using var done = new CancellationTokenSource();
        var peak = 0L;
        var sampler = Task.Run(async () =>
        {
            await using var admin = new NpgsqlConnection(servers.Primary.ConnectionString);
            await admin.OpenAsync();
            await using var count = new NpgsqlCommand($"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{application}'", admin);
            while (!done.IsCancellationRequested)
            {
                peak = Math.Max(peak, (long)(await count.ExecuteScalarAsync())!);
                await Task.Delay(20);
            }
        });

        var tooManyClients = 0;
        var otherFailures = new List<string>();
        var units = 0;
        var replicaReads = 0;
        var workers = Enumerable.Range(0, Tasks).Select(worker => Task.Run(async () =>
        {
            for (var mine = 0; !(stop.IsCancellationRequested && mine >= 2) && !limit.IsCancellationRequested;)
            {
                try
                {
                    using var scope = worker % 2 == 0 ? EfReplicaScope.BeginConsistency() : null;
                    await using var context = cluster.NewContext(mode);
                    var person = new Person { Name = $"soak-{worker}-{Guid.NewGuid():N}", Mood = Mood.Happy };
                    context.People.Add(person);
                    await context.SaveChangesAsync();
                    await using var reader = scope is null ? null : cluster.NewContext(mode);
                    var back = await (reader ?? context).People.AsNoTracking().Where(p => p.Id == person.Id).Select(p => p.Name).SingleAsync();
                    Assert.That(back, Is.EqualTo(person.Name), "read-your-writes");
                    for (var i = 0; i < 3; i++)
                    {
                        if ((await (reader ?? context).WhereAmI().SingleAsync()).InRecovery)
                        {
                            Interlocked.Increment(ref replicaReads);
                        }
                    }

                    Interlocked.Increment(ref units);
                    mine++;
                }
                catch (Exception exception) when (Find53300(exception))
                {
                    Interlocked.Increment(ref tooManyClients);
                }
                catch (Exception exception) when (exception is not AssertionException)
                {
                    lock (otherFailures)
                    {
                        otherFailures.Add(exception.GetType().Name + ": " + exception.Message);
                    }
                }
            }
        })).ToArray();

        await Task.WhenAll(workers);
        await done.CancelAsync();
        await sampler;

        TestContext.Out.WriteLine($"{units} units of work, {replicaReads} of {units * 3} follow-up reads on the standby, peak {peak} primary client connections");
        Assert.That(tooManyClients, Is.Zero, "calls failed with 53300 too many clients");
        Assert.That(otherFailures, Is.Empty);
        Assert.That(units, Is.GreaterThanOrEqualTo(2 * Tasks), "every worker finished two units of work within the bound");
        Assert.That(peak, Is.LessThanOrEqualTo(Tasks + 2), "primary client connections of the cluster: one per unit of work at most, plus the monitor's");
    }

    private static bool Find53300(Exception? exception)
    {
        for (; exception is not null; exception = exception.InnerException)
        {
            if (exception is PostgresException { SqlState: "53300" })
            {
                return true;
            }
        }

        return false;
    }
}
