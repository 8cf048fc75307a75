using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace EfReplicaInterceptor.IntegrationTests.Failover;

/// <summary>
/// With the primary stopped and the standby up, every replica-eligible read succeeds on the standby (asked from the server
/// side), however its context was made: fresh, from a context pool, from dependency injection, sequential or eight at a
/// time, with warm or cold pools, before or after a write that failed; and writes get the typed outcome "not applied".
/// 200 reads in all (25 per case).
/// </summary>
[NonParallelizable]
public sealed class PrimaryDownReadTests
{
    private const int ReadsPerCase = 25;

    private PostgresReplicaSet? _servers;
    private TestCluster? _cluster;

    private PostgresReplicaSet Servers => _servers ?? throw new InvalidOperationException("No servers.");

    private TestCluster Cluster => _cluster ?? throw new InvalidOperationException("No cluster.");

    [OneTimeSetUp]
    public async Task StopThePrimary()
    {
        _servers = await ShopServers.StartAsync();
        _cluster = await TestCluster.CreateAsync(_servers, options => options.HealthCheckInterval = TimeSpan.FromMilliseconds(200));

        // Warm: pools hold idle primary and replica connections, the lease machinery has seen writes.
        await using (var warm = Cluster.NewContext())
        {
            warm.People.Add(new Person { Name = $"warm-{Guid.NewGuid():N}", Mood = Mood.Happy });
            await warm.SaveChangesAsync();
            _ = await warm.People.CountAsync();
        }

        await Servers.WaitForReplayAsync(Servers.Standby);
        await Servers.Primary.StopAsync(StopMode.Fast);

        // The warm-up left a primary session in the pool, which the stop ended; a write that meets it before anything else
        // has noticed the stop has an unknown outcome (the session died under it). The monitor's first probe of the stopped
        // primary empties the pool (its kept session fails with 57P01, or its open is refused), as it does for an
        // application whose primary has been down for more than a probe interval: wait for that, not for the clock.
        await Poll.Until(() => Cluster.Cluster.Monitor.PrimaryProblem is not null, TimeSpan.FromSeconds(20));
    }

    [OneTimeTearDown]
    public async Task StopServers()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }

        if (_servers is not null)
        {
            await _servers.DisposeAsync();
        }
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Fresh_contexts_read_from_the_standby(bool eightAtATime)
        => await ReadAsync(eightAtATime, async () =>
        {
            await using var context = Cluster.NewContext();
            return await context.WhereAmI().SingleAsync();
        });

    [TestCase(false)]
    [TestCase(true)]
    public async Task Pooled_contexts_read_from_the_standby(bool eightAtATime)
    {
        var factory = new PooledDbContextFactory<ShopContext>(Cluster.ContextOptions(), poolSize: 8);
        await ReadAsync(eightAtATime, async () =>
        {
            await using var context = await factory.CreateDbContextAsync();
            return context.WhereAmI().Single();
        });
    }

    [Test]
    public async Task Contexts_from_dependency_injection_read_from_the_standby()
    {
        var services = new ServiceCollection();
        services.AddDbContextPool<ShopContext>(options => Cluster.Configure(options));
        await using var provider = services.BuildServiceProvider();
        await ReadAsync(eightAtATime: true, async () =>
        {
            await using var scope = provider.CreateAsyncScope();
            return await scope.ServiceProvider.GetRequiredService<ShopContext>().WhereAmI().SingleAsync();
        });
    }

    [Test]
    public async Task A_context_whose_write_failed_still_reads_from_the_standby()
    {
        await ReadAsync(eightAtATime: false, async () =>
        {
            await using var context = Cluster.NewContext();
            context.People.Add(new Person { Name = $"lost-{Guid.NewGuid():N}", Mood = Mood.Sad });
            var failure = Assert.ThrowsAsync<EfReplicaFailoverException>(async () => await context.SaveChangesAsync());
            Assert.That(failure!.Outcome, Is.EqualTo(FailoverOutcome.NotApplied), failure.Message);
            return await context.WhereAmI().SingleAsync();
        });
    }

    [Test]
    public async Task A_cluster_started_while_the_primary_is_down_reads_from_the_standby()
    {
        // Cold: no pooled connection anywhere, the primary never seen.
        await using var cold = await TestCluster.CreateAsync(Servers);
        await ReadAsync(eightAtATime: true, async () =>
        {
            await using var context = cold.NewContext();
            return await context.WhereAmI().SingleAsync();
        });
    }

    [Test]
    public async Task Synchronous_reads_after_a_failed_synchronous_write_read_from_the_standby()
    {
        await ReadAsync(eightAtATime: false, () =>
        {
            using var context = Cluster.NewContext();
            context.People.Add(new Person { Name = $"lost-{Guid.NewGuid():N}", Mood = Mood.Sad });
            var failure = Assert.Throws<EfReplicaFailoverException>(() => context.SaveChanges());
            Assert.That(failure!.Outcome, Is.EqualTo(FailoverOutcome.NotApplied), failure.Message);
            return Task.FromResult(context.WhereAmI().Single());
        });
    }

    private async Task ReadAsync(bool eightAtATime, Func<Task<ServerSide>> read)
    {
        var failures = new List<string>();
        var served = 0;
        var gate = new SemaphoreSlim(eightAtATime ? 8 : 1);
        await Task.WhenAll(Enumerable.Range(0, ReadsPerCase).Select(async _ =>
        {
            await gate.WaitAsync();
            try
            {
                var side = await read();
                if (side.Port == Servers.Standby.Port && side.InRecovery)
                {
                    Interlocked.Increment(ref served);
                }
                else
                {
                    lock (failures)
                    {
                        failures.Add($"served by port {side.Port}");
                    }
                }
            }
            catch (Exception exception) when (exception is not AssertionException)
            {
                lock (failures)
                {
                    failures.Add(exception.GetType().Name + ": " + exception.Message);
                }
            }
            finally
            {
                gate.Release();
            }
        }));

        Assert.That(served, Is.EqualTo(ReadsPerCase), string.Join(Environment.NewLine, failures.Distinct().Take(5)));
    }
}
