using System.Diagnostics;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Topology;

/// <summary>
/// Npgsql loads a host's types once, on the first physical connection of that host's pool, and a multi-host primary string
/// connects to its standbys too while it looks for the primary. A standby whose pool loaded its types before it replayed an
/// enum the primary had just created (a migration) lacks that enum for good: Npgsql's <c>ReloadTypes</c> does not reach a
/// multi-host data source's pools (npgsql/npgsql#6237). Once the standby is promoted, every write naming the enum failed
/// untyped ("The data type name 'weather' could not be found in the types that were loaded by Npgsql") until the application
/// restarted: seen in a Patroni switchover (1,445 writes of 1,599). Here by hand, deterministically: node A the primary,
/// node B its standby with replay paused while A creates the enum, B's pool in the primary's data source loaded then.
/// </summary>
[NonParallelizable]
public sealed class PromotedTypeCatalogTests
{
    [Test]
    public async Task Writes_naming_an_enum_the_promoted_standby_lacked_when_its_pool_loaded_succeed_after_the_promotion()
    {
        await using var servers = await ShopServers.StartAsync(standbys: 1);
        if (servers.IsExternal || servers.Backend != PostgresBackend.Local)
        {
            Assert.Ignore("A promotion by hand needs local servers started by the tests.");
        }

        var (nodeA, nodeB) = (servers.Primary, servers.Standby);
        await nodeB.PauseReplayAsync();
        await nodeA.ExecuteAsync(ForecastContext.Schema);

        using var recorder = new RoutingRecorder();
        using var loggerFactory = recorder.CreateFactory();
        var options = TestCluster.Options(servers);
        options.Primary = TestCluster.WithPool(new NpgsqlConnectionStringBuilder(nodeA.ConnectionString)
        {
            Host = $"{nodeB.Host}:{nodeB.Port},{nodeA.Host}:{nodeA.Port}", // the standby first, as a Patroni member list may have it
            TargetSessionAttributes = "primary",
        }.ConnectionString, TestCluster.DefaultMaxPoolSize);
        options.Replicas.Clear();
        options.Replicas.Add(new ReplicaEndpointOptions { Name = "node-a", ConnectionString = TestCluster.WithPool(nodeA.ConnectionString, TestCluster.DefaultMaxPoolSize) });
        options.Replicas.Add(new ReplicaEndpointOptions { Name = "node-b", ConnectionString = TestCluster.WithPool(nodeB.ConnectionString, TestCluster.DefaultMaxPoolSize) });
        options.HealthCheckInterval = TimeSpan.FromMilliseconds(250);
        options.Failover.ReadDeadline = TimeSpan.FromSeconds(6);
        await using var cluster = EfReplicaCluster.Create(options, loggerFactory, ForecastContext.MapTypes);
        await cluster.RefreshHealthAsync();

        // B's pool in the primary's data source loads its types now, while B lacks the enum (the precondition, shown).
        var standbySide = ((NpgsqlMultiHostDataSource)cluster.PrimaryDataSource).WithTargetSession(TargetSessionAttributes.Standby);
        await using (var onB = await standbySide.OpenConnectionAsync())
        {
            Assert.That(onB.Port, Is.EqualTo(nodeB.Port));
            await using var command = new NpgsqlCommand("SELECT $1::text", onB) { Parameters = { new() { Value = Weather.Rainy, DataTypeName = "weather" } } };
            var refused = Assert.ThrowsAsync<NotSupportedException>(() => command.ExecuteScalarAsync())!;
            Assert.That(refused.Message, Does.Contain("'weather'"), "B's pool loaded its types without the enum");
            Assert.That(PrimaryTypeCatalog.IsUnknownTypeError(refused), Is.True, "Npgsql's own refusal is recognised as one");
        }

        await WriteAsync(cluster, Weather.Sunny); // on A, whose pool knows the enum
        await nodeB.ResumeReplayAsync();
        await Poll.UntilAsync(async () => await nodeB.ScalarAsync<long>("SELECT count(*) FROM forecasts") == 1, TimeSpan.FromSeconds(20), "B to replay the enum and the first write");

        await nodeA.StopAsync(StopMode.Fast);
        await nodeB.PromoteAsync();
        var clock = Stopwatch.StartNew();
        var typed = new List<string>();
        var untyped = new List<string>();
        var written = 0;
        while (written < 20 && clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            try
            {
                await WriteAsync(cluster, Weather.Rainy);
                written++;
            }
            catch (EfReplicaFailoverException failover)
            {
                typed.Add($"{failover.Outcome} at {clock.ElapsedMilliseconds} ms: {failover.Message.Split(':')[0]}");
                await Task.Delay(10); // a writer that retries at once, not a spin
            }
            catch (Exception exception)
            {
                untyped.Add($"at {clock.ElapsedMilliseconds} ms: {exception.GetType().Name}: {exception.GetBaseException().Message}");
            }
        }

        var onNewPrimary = await nodeB.ScalarAsync<long>("SELECT count(*) FROM forecasts WHERE weather = 'rainy'");
        TestContext.Out.WriteLine($"after the promotion: {written} writes, {typed.Count} failed typed, {untyped.Count} untyped in {clock.ElapsedMilliseconds} ms; "
            + $"types reloaded {recorder.AllEvents.Count(e => e.EventId == EfReplicaEventId.PrimaryTypesReloaded)} time(s)");
        foreach (var failure in untyped.Take(3).Concat(typed.Take(2)).Concat(typed.Skip(2).TakeLast(2)))
        {
            TestContext.Out.WriteLine("  " + failure);
        }

        Assert.Multiple(() =>
        {
            Assert.That(untyped, Is.Empty, "every failed write is typed");
            Assert.That(written, Is.EqualTo(20), "writes naming the enum succeed on the promoted node");
            Assert.That(onNewPrimary, Is.EqualTo(written), "each acknowledged write is on the new primary");
            Assert.That(recorder.AllEvents.Where(e => e.EventId == EfReplicaEventId.PrimaryTypesReloaded).Select(e => e.Message),
                Has.Some.Contains($"{nodeB.Host}:{nodeB.Port}"), "the promoted node's types were reloaded (event 2022)");
        });
    }

    private static async Task WriteAsync(EfReplicaCluster cluster, Weather weather)
    {
        await using var context = ForecastContext.Create(cluster);
        context.Forecasts.Add(new Forecast { Weather = weather });
        await context.SaveChangesAsync();
    }
}
