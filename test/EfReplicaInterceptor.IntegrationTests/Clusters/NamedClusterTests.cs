using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EfReplicaInterceptor.IntegrationTests.Clusters;

/// <summary>
/// Two clusters configured side by side, each bound to its own DbContext type: every command of a context lands on its
/// own cluster's servers, as the servers report it.
/// </summary>
[NonParallelizable] // the meter listener sees every cluster in the process
public sealed class NamedClusterTests
{
    [SetUp]
    public void RequireServers() => ClusterServers.RequireTwoClusters();

    [Test]
    public async Task Each_context_type_reads_and_writes_only_in_its_own_cluster([Values(false, true)] bool async)
    {
        var clusterTags = new ConcurrentBag<string>();
        using var listener = ListenToCommandCounter(clusterTags);
        using var recorder = new RoutingRecorder();
        using var host = BuildHost(recorder);
        await host.StartAsync();

        Assert.That(host.Services.GetRequiredKeyedService<EfReplicaCluster>("orders").Name, Is.EqualTo("orders"));
        Assert.That(host.Services.GetRequiredKeyedService<EfReplicaCluster>("analytics").Name, Is.EqualTo("analytics"));

        foreach (var (contextType, own, other) in new[] { (typeof(OrdersContext), ClusterServers.A, ClusterServers.B), (typeof(AnalyticsContext), ClusterServers.B, ClusterServers.A) })
        {
            var name = $"named-{contextType.Name}-{Guid.NewGuid():N}";
            await using (var scope = host.Services.CreateAsyncScope())
            {
                var context = (ShopDbContext)scope.ServiceProvider.GetRequiredService(contextType);
                var read = async ? await context.WhereAmI().SingleAsync() : context.WhereAmI().Single();
                Assert.That(read, Is.EqualTo(new ServerSide(own.Standby.Port, InRecovery: true)), $"{contextType.Name}: a plain read runs on its own cluster's standby");

                var person = new Person { Name = name };
                context.People.Add(person);
                _ = async ? await context.SaveChangesAsync() : context.SaveChanges();
                Assert.That(person.WrittenOnPort, Is.EqualTo(own.Primary.Port), $"{contextType.Name}: the write ran on its own cluster's primary");

                var afterWrite = async ? await context.WhereAmI().SingleAsync() : context.WhereAmI().Single();
                Assert.That(new[] { own.Primary.Port, own.Standby.Port }, Does.Contain(afterWrite.Port), $"{contextType.Name}: a read after the write stays in its cluster");
            }

            Assert.That(await CountAsync(own.Primary, name), Is.EqualTo(1), "the row is in the context's own cluster");
            Assert.That(await CountAsync(other.Primary, name), Is.EqualTo(0), "the row is not in the other cluster");
        }

        Assert.That(clusterTags.Distinct(), Is.EquivalentTo(new[] { "orders", "analytics" }), "metrics carry the configured cluster names");
        var routed = recorder.AllEvents.Where(e => e.EventId == 1000).Select(e => e.Message).ToList();
        Assert.That(routed, Has.Some.Contains("cluster 'orders'").And.Some.Contains("cluster 'analytics'"), "log events name the cluster by its key");
        Assert.That(recorder.EverythingLogged, Has.None.Contains(TestPassword), "no log line carries a password");
        Assert.That(recorder.EverythingLogged, Has.None.Contains($"Port={ClusterServers.A.Primary.Port}"), "no log line carries a connection string");
    }

    [Test]
    public async Task Both_clusters_are_watched_and_reported_healthy()
    {
        using var recorder = new RoutingRecorder();
        using var host = BuildHost(recorder, builder => builder.Services.AddHealthChecks().AddEfReplicaCluster("orders").AddEfReplicaCluster("analytics"));
        await host.StartAsync();

        var report = await host.Services.GetRequiredService<Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckService>().CheckHealthAsync();

        Assert.That(report.Entries.Keys, Is.EquivalentTo(new[] { "efreplica-orders", "efreplica-analytics" }));
        Assert.That(report.Entries.Values.Select(entry => entry.Status), Is.All.EqualTo(Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Healthy));
        Assert.That(report.Entries["efreplica-orders"].Description, Does.Contain("'orders'"));
    }

    private const string TestPassword = "efreplica-test-password";

    internal static string Pooled(string connectionString, string applicationName)
        => new Npgsql.NpgsqlConnectionStringBuilder(connectionString) { MaxPoolSize = 20, ApplicationName = applicationName }.ConnectionString;

    private static IHost BuildHost(RoutingRecorder recorder, Action<HostApplicationBuilder>? configure = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["EfReplica:HealthCheckInterval"] = "00:00:00.500",
            ["EfReplica:ReadYourWrites"] = "Primary",
            ["EfReplica:Clusters:orders:Primary"] = Pooled(ClusterServers.A.Primary.ConnectionString, "efreplica-orders"),
            ["EfReplica:Clusters:orders:Replicas:0:Name"] = "orders-standby",
            ["EfReplica:Clusters:orders:Replicas:0:ConnectionString"] = Pooled(ClusterServers.A.Standby.ConnectionString, "efreplica-orders"),
            ["EfReplica:Clusters:analytics:Primary"] = Pooled(ClusterServers.B.Primary.ConnectionString, "efreplica-analytics"),
            ["EfReplica:Clusters:analytics:Replicas:0:Name"] = "analytics-standby",
            ["EfReplica:Clusters:analytics:Replicas:0:ConnectionString"] = Pooled(ClusterServers.B.Standby.ConnectionString, "efreplica-analytics"),
        });
        builder.Logging.ClearProviders().SetMinimumLevel(LogLevel.Debug).AddProvider(recorder);
        builder.Services.AddEfReplicaClusters(builder.Configuration.GetSection("EfReplica"), TestCluster.MapTypes);
        builder.Services.AddDbContextPool<OrdersContext>((sp, options) => options.UseEfReplicaCluster(sp, "orders", npgsql => npgsql.MapEnum<Mood>("mood")));
        builder.Services.AddDbContext<AnalyticsContext>((sp, options) => options.UseEfReplicaCluster(sp, "analytics", npgsql => npgsql.MapEnum<Mood>("mood")));
        configure?.Invoke(builder);
        return builder.Build();
    }

    internal static MeterListener ListenToCommandCounter(ConcurrentBag<string> clusters)
    {
        var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == EfReplicaDiagnostics.MeterName && instrument.Name == EfReplicaDiagnostics.CommandsCounterName)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == EfReplicaDiagnostics.ClusterTag)
                {
                    clusters.Add((string)tag.Value!);
                }
            }
        });
        listener.Start();
        return listener;
    }

    internal static async Task<long> CountAsync(PostgresServer primary, string name)
        => await primary.ScalarAsync<long>($"SELECT count(*) FROM people WHERE name = '{name}'");
}
