using System.Diagnostics;
using EfReplicaInterceptor.Health;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EfReplicaInterceptor.IntegrationTests.Topology;

/// <summary>A stopped replica is left out and comes back by itself; bad replica settings warn but never stop start-up.</summary>
[NonParallelizable]
public sealed class ReplicaLivenessTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);
    private PostgresReplicaSet _servers = null!;

    [OneTimeSetUp]
    public async Task StartServers()
    {
        _servers = await ShopServers.StartAsync();
    }

    [OneTimeTearDown]
    public async Task StopServers() => await _servers.DisposeAsync();

    [Test]
    [Order(1)]
    public async Task A_stopped_replica_is_left_out_reads_keep_working_and_it_is_readmitted_when_started()
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options => options.HealthCheckInterval = Interval);
        int failed = 0, onPrimary = 0, onStandby = 0;
        var clock = Stopwatch.StartNew();
        TimeSpan? backAfter = null;
        var startedAt = TimeSpan.Zero;

        async Task Read()
        {
            try
            {
                await using var context = cluster.NewContext();
                var side = await context.WhereAmI().SingleAsync();
                if (side.Port == _servers.Standby.Port)
                {
                    onStandby++;
                    if (startedAt > TimeSpan.Zero)
                    {
                        backAfter ??= clock.Elapsed - startedAt;
                    }
                }
                else
                {
                    onPrimary++;
                }
            }
            catch (Exception exception)
            {
                failed++;
                TestContext.Out.WriteLine($"read failed: {exception.GetType().Name}: {exception.Message}");
            }
        }

        for (var i = 0; i < 20; i++)
        {
            await Read();
        }

        var stopping = _servers.Standby.StopAsync(StopMode.Immediate);
        while (!stopping.IsCompleted)
        {
            await Read();
        }

        await stopping;
        for (var i = 0; i < 50; i++)
        {
            await Read();
            await Task.Delay(10);
        }

        var primaryReadsWhileDown = onPrimary;
        await _servers.Standby.StartAsync();
        startedAt = clock.Elapsed;
        while (backAfter is null && clock.Elapsed - startedAt < TimeSpan.FromSeconds(15))
        {
            await Read();
            await Task.Delay(20);
        }

        TestContext.Out.WriteLine($"failed reads {failed}; on the primary while the standby was down {primaryReadsWhileDown}; back on the standby {backAfter?.TotalMilliseconds:0} ms after it started");
        Assert.Multiple(() =>
        {
            Assert.That(failed, Is.Zero, "a read failed while the replica went down");
            Assert.That(primaryReadsWhileDown, Is.GreaterThanOrEqualTo(50));
            Assert.That(backAfter, Is.Not.Null.And.LessThan(TimeSpan.FromSeconds(8)), "not re-admitted within a few (backed-off) intervals");
        });
        var warnings = cluster.Recorder.AllEvents.Where(e => e.Level == LogLevel.Warning).Select(e => e.EventId).ToList();
        Assert.That(warnings, Does.Contain(2000).Or.Contain(1002), "leaving was logged as a warning");
        Assert.That(cluster.Recorder.AllEvents.Select(e => e.EventId), Does.Contain(2001), "rejoining was logged");
    }

    [Test]
    [Order(2)]
    public async Task Replicas_pointing_at_a_primary_or_at_nothing_are_kept_out_with_a_warning_and_startup_succeeds()
    {
        var recorder = new RoutingRecorder();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders().SetMinimumLevel(LogLevel.Debug).AddProvider(recorder);
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["EfReplica:Primary"] = _servers.Primary.ConnectionString,
            ["EfReplica:Replicas:0:Name"] = "actually-the-primary",
            // The primary under another spelling (start-up refuses the same one, and cannot resolve names): the monitor finds it is not a standby.
            ["EfReplica:Replicas:0:ConnectionString"] = new Npgsql.NpgsqlConnectionStringBuilder(_servers.Primary.ConnectionString) { Host = "localhost" }.ConnectionString,
            ["EfReplica:Replicas:1:Name"] = "nothing-there",
            ["EfReplica:Replicas:1:ConnectionString"] = "Host=127.0.0.1;Port=1;Database=efreplica;Username=x;Password=y;Timeout=1",
            ["EfReplica:Replicas:2:Name"] = "real-standby",
            ["EfReplica:Replicas:2:ConnectionString"] = _servers.Standby.ConnectionString,
            ["EfReplica:HealthCheckInterval"] = "00:00:00.200",
        });
        builder.Services.AddEfReplica(builder.Configuration.GetSection("EfReplica"), TestCluster.MapTypes);
        builder.Services.AddHealthChecks().AddEfReplica();
        builder.Services.AddDbContext<ShopContext>((sp, options) =>
        {
            var efReplica = sp.GetRequiredService<EfReplicaCluster>();
            options.UseNpgsql(efReplica.PrimaryDataSource, npgsql => npgsql.MapEnum<Mood>("mood")).AddInterceptors(efReplica.Interceptors);
        });
        using var host = builder.Build();

        await host.StartAsync();
        var cluster = host.Services.GetRequiredService<EfReplicaCluster>();
        var sides = new List<ServerSide>();
        for (var i = 0; i < 6; i++)
        {
            using var scope = host.Services.CreateScope();
            sides.Add(await scope.ServiceProvider.GetRequiredService<ShopContext>().WhereAmI().SingleAsync());
        }

        var health = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        await host.StopAsync();

        var keptOut = recorder.AllEvents.Where(e => e.EventId == 2003).ToList();
        var primaries = recorder.AllEvents.Where(e => e.EventId == 2020).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(keptOut.Select(e => e.Level), Is.All.EqualTo(LogLevel.Warning));
            Assert.That(keptOut.Select(e => e.Message), Has.One.Contains("'nothing-there'").And.Contains("unreachable"));

            // Issue 20: the primary listed as a replica is the primary, not a fault (an HA cluster lists every node).
            Assert.That(keptOut.Select(e => e.Message), Has.None.Contains("'actually-the-primary'"));
            Assert.That(primaries.Select(e => (e.Level, e.Message)), Has.One.EqualTo((LogLevel.Information, "Replica 'actually-the-primary' of cluster 'default' answers as the primary; it takes no standby reads while it is")));
            Assert.That(health.Entries.Single().Value.Description, Does.Contain("(nothing-there)"), "only the unreachable one degrades the cluster");
            Assert.That(cluster.Replicas.Select(r => (r.Name, r.IsAdmitted)), Is.EqualTo(new[] { ("actually-the-primary", false), ("nothing-there", false), ("real-standby", true) }));
            Assert.That(sides.Select(s => s.Port), Is.All.EqualTo(_servers.Standby.Port), "reads go to the one real standby");
            Assert.That(health.Status, Is.EqualTo(HealthStatus.Degraded));
        });
    }

    [Test]
    [Order(3)]
    public async Task Health_check_is_unhealthy_when_the_primary_is_down()
    {
        await using var cluster = await TestCluster.CreateAsync(_servers, options => options.HealthCheckInterval = Interval);
        var check = new EfReplicaHealthCheck(cluster.Cluster);
        Assert.That((await check.CheckHealthAsync(new HealthCheckContext())).Status, Is.EqualTo(HealthStatus.Healthy));

        await _servers.Primary.StopAsync(StopMode.Fast);
        await cluster.Cluster.RefreshHealthAsync();
        var down = await check.CheckHealthAsync(new HealthCheckContext());
        await _servers.Primary.StartAsync();

        Assert.That(down.Status, Is.EqualTo(HealthStatus.Unhealthy), down.Description);
        Assert.That(down.Description, Does.Contain("primary"));
        Assert.That(cluster.Recorder.AllEvents.Select(e => e.EventId), Does.Contain(2005));
    }
}
