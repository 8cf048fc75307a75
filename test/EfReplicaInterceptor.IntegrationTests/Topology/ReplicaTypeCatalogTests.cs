using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.IntegrationTests.Support;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Topology;

/// <summary>
/// Npgsql loads a replica's types once, on its pool's first connection: the monitor's first probe, at start-up. An enum an
/// in-process migration creates later (EF then reloads the types of the primary's connection, and of nothing else) was
/// unknown to the replica's sessions, and every replica read of it failed ("Reading as 'Weather' is not supported for
/// fields having DataTypeName '-.-'") where the same read on the primary succeeded. Judged by the server that ran the read.
/// </summary>
[NonParallelizable]
public sealed class ReplicaTypeCatalogTests
{
    [TestCase(false)]
    [TestCase(true)]
    public async Task Replica_reads_of_an_enum_a_migration_created_after_start_up_run_on_the_standby(bool async)
    {
        await using var servers = await ShopServers.StartAsync(standbys: 1);
        using var recorder = new RoutingRecorder();
        using var loggerFactory = recorder.CreateFactory();
        var options = TestCluster.Options(servers);
        options.HealthCheckInterval = TimeSpan.FromMilliseconds(250);
        await using var cluster = EfReplicaCluster.Create(options, loggerFactory, ForecastContext.MapTypes);
        await cluster.RefreshHealthAsync();
        await Poll.Until(() => cluster.Replicas.All(replica => replica.IsAdmitted), TimeSpan.FromSeconds(10)); // the replica's pool has loaded its types

        await using (var context = ForecastContext.Create(cluster))
        {
            // What an in-process migration does: the DDL on the primary, then EF reloads the types of its connection.
            await context.Database.OpenConnectionAsync();
            await context.Database.ExecuteSqlRawAsync(ForecastContext.Schema);
            await ((NpgsqlConnection)context.Database.GetDbConnection()).ReloadTypesAsync();
            context.Forecasts.Add(new Forecast { Weather = Weather.Rainy });
            await context.SaveChangesAsync();
        }

        await Poll.UntilAsync(async () => await servers.Standby.ScalarAsync<long>("SELECT count(*) FROM forecasts") == 1, TimeSpan.FromSeconds(20), "the standby to replay the migration");
        const string Query = "SELECT weather AS \"Weather\", inet_server_port() AS \"Port\", pg_is_in_recovery() AS \"InRecovery\" FROM forecasts";
        var reads = new List<ForecastRow>();
        for (var i = 0; i < 20; i++)
        {
            await using var context = ForecastContext.Create(cluster);
            var query = context.Database.SqlQueryRaw<ForecastRow>(Query);
            reads.AddRange(async ? await query.ToListAsync() : [.. query]);
        }

        var reloadsForTheEnum = cluster.Replicas.Single().Types.Reloads;

        // A table's row type: Npgsql does not load those, so a reload does not bring it. The read fails as it would on the
        // primary, and the replica's types are reloaded for it once, not on every read.
        var rowTypeErrors = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            await using var context = ForecastContext.Create(cluster);
            var query = context.Database.SqlQueryRaw<string>("SELECT f AS \"Value\" FROM forecasts f");
            try
            {
                _ = async ? await query.ToListAsync() : [.. query];
            }
            catch (Exception exception)
            {
                rowTypeErrors.Add(exception.GetType().Name);
                Assert.That(PrimaryTypeCatalog.IsUnknownTypeError(exception), Is.False, "an error reading a result is never taken for a write Npgsql refused to bind");
            }
        }

        TestContext.Out.WriteLine($"replica type reloads: {reloadsForTheEnum} for the enum, {cluster.Replicas.Single().Types.Reloads - reloadsForTheEnum} for the row type; row-type reads failed with {string.Join(", ", rowTypeErrors.Distinct())}");
        Assert.Multiple(() =>
        {
            Assert.That(reloadsForTheEnum, Is.EqualTo(1), "one reload serves every read after it");
            Assert.That(cluster.Replicas.Single().Types.Reloads - reloadsForTheEnum, Is.LessThanOrEqualTo(1), "a type a reload does not bring is not reloaded for again");
            Assert.That(rowTypeErrors, Has.Count.EqualTo(5).And.All.EqualTo(nameof(InvalidCastException)), "the row-type read fails as it would on the primary");
            Assert.That(reads, Has.Count.EqualTo(20));
            Assert.That(reads.Select(read => read.Weather), Is.All.EqualTo(Weather.Rainy));
            Assert.That(reads.Select(read => (read.Port, read.InRecovery)), Is.All.EqualTo((servers.Standby.Port, true)), "the reads ran on the standby");
        });
    }

    /// <summary>A row of forecasts, with the server that read it.</summary>
    private sealed record ForecastRow(Weather Weather, int Port, bool InRecovery);
}
