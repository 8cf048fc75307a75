using System.Diagnostics;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Routing;

/// <summary>
/// The soak of issue 14: 64 tasks writing and reading back against a primary with <c>max_connections = 100</c> and Npgsql's
/// default pool size (100). Each unit of work holds at most one primary connection at a time (EF's, opened only for its
/// writes; the position capture and any primary read use one of the pool's while EF's is closed), so the primary's client
/// connections stay under the limit: no call fails with 53300 "too many clients".
/// </summary>
[NonParallelizable]
public sealed class ConnectionBudgetTests
{
    private const int Tasks = 64;

    [Test]
    public async Task Sixty_four_writers_reading_back_stay_within_max_connections()
    {
        var options = new PostgresReplicaSetOptions { MaxConnections = 100 };
        await using var servers = await ShopServers.StartAsync(options: options);
        var application = $"efr-soak-{Guid.NewGuid():N}"[..24];
        await using var cluster = await TestCluster.CreateAsync(servers, o =>
        {
            o.Primary = new NpgsqlConnectionStringBuilder(o.Primary) { ApplicationName = application }.ConnectionString;
        }, maxPoolSize: null, recordEvents: false);

        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(8));
        var peak = 0L;
        var sampler = Task.Run(async () =>
        {
            await using var admin = new NpgsqlConnection(servers.Primary.ConnectionString);
            await admin.OpenAsync();
            await using var count = new NpgsqlCommand($"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{application}'", admin);
            while (!stop.IsCancellationRequested)
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
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await using var context = cluster.NewContext();
                    var person = new Person { Name = $"soak-{worker}-{Guid.NewGuid():N}", Mood = Mood.Happy };
                    context.People.Add(person);
                    await context.SaveChangesAsync();
                    var back = await context.People.AsNoTracking().Where(p => p.Id == person.Id).Select(p => p.Name).SingleAsync();
                    Assert.That(back, Is.EqualTo(person.Name), "read-your-writes");
                    for (var i = 0; i < 3; i++)
                    {
                        if ((await context.WhereAmI().SingleAsync()).InRecovery)
                        {
                            Interlocked.Increment(ref replicaReads);
                        }
                    }

                    Interlocked.Increment(ref units);
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
        await sampler;

        TestContext.Out.WriteLine($"{units} units of work, {replicaReads} of {units * 3} follow-up reads on the standby, peak {peak} primary client connections");
        Assert.That(tooManyClients, Is.Zero, "calls failed with 53300 too many clients");
        Assert.That(otherFailures, Is.Empty);
        Assert.That(units, Is.GreaterThan(Tasks));
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
