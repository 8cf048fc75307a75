using System.Diagnostics;
using System.Diagnostics.Metrics;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Health;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EfReplicaInterceptor.IntegrationTests.Topology;

/// <summary>
/// A standby promoted while the old primary keeps running: two writable primaries. The monitor says so (Error event 2010,
/// the writable-servers gauge at 2, an Unhealthy health check naming both) within two probe intervals, whatever the order
/// of the hosts in a multi-host primary, and no read goes to the promoted node afterwards.
/// </summary>
[NonParallelizable]
public sealed class SplitBrainTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);

    /// <summary>How the primary is configured.</summary>
    public enum PrimaryForm
    {
        /// <summary>The primary's own address; the standby is a configured replica that gets promoted.</summary>
        SingleHost,

        /// <summary><c>Host=standby,primary</c> with <c>Target Session Attributes=primary</c>.</summary>
        MultiHostStandbyFirst,

        /// <summary><c>Host=primary,standby</c> with <c>Target Session Attributes=primary</c>.</summary>
        MultiHostStandbyLast,
    }

    private static string PrimaryConnectionString(PostgresReplicaSet servers, PrimaryForm form)
    {
        static string Address(PostgresServer server) => $"{server.Host}:{server.Port}";
        var single = TestCluster.WithPool(servers.Primary.ConnectionString, TestCluster.DefaultMaxPoolSize);
        return form switch
        {
            PrimaryForm.SingleHost => single,
            PrimaryForm.MultiHostStandbyFirst => new NpgsqlConnectionStringBuilder(single) { Host = $"{Address(servers.Standby)},{Address(servers.Primary)}", TargetSessionAttributes = "primary" }.ConnectionString,
            _ => new NpgsqlConnectionStringBuilder(single) { Host = $"{Address(servers.Primary)},{Address(servers.Standby)}", TargetSessionAttributes = "primary" }.ConnectionString,
        };
    }

    [TestCase(PrimaryForm.SingleHost)]
    [TestCase(PrimaryForm.MultiHostStandbyFirst)]
    [TestCase(PrimaryForm.MultiHostStandbyLast)]
    public async Task A_standby_promoted_beside_a_running_primary_is_reported_within_two_probe_intervals_and_serves_no_read(PrimaryForm form)
    {
        await using var servers = await ShopServers.StartAsync();
        if (servers.IsExternal)
        {
            Assert.Ignore("Promoting a standby needs servers started by the tests.");
        }

        await using var cluster = await TestCluster.CreateAsync(servers, options =>
        {
            options.HealthCheckInterval = Interval;
            options.Primary = PrimaryConnectionString(servers, form);
        });
        var health = new EfReplicaHealthCheck(cluster.Cluster);
        using var gauge = new WritableServersGauge(cluster.Cluster.Name);

        await cluster.Cluster.RefreshHealthAsync();
        var before = await health.CheckHealthAsync(new HealthCheckContext());
        Assert.Multiple(() =>
        {
            Assert.That(cluster.Cluster.Monitor.SplitBrain, Is.Null, "one primary and a streaming standby");
            Assert.That(before.Status, Is.EqualTo(HealthStatus.Healthy), before.Description);
            Assert.That(gauge.Read(), Is.EqualTo(1));
            Assert.That(cluster.Cluster.Replicas[0].IsAdmitted, Is.True);
        });

        var clock = Stopwatch.StartNew();
        await servers.Standby.PromoteAsync(); // returns once pg_is_in_recovery() is false on it
        var promotedAt = clock.Elapsed;
        while (cluster.Cluster.Monitor.SplitBrain is null && clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(10);
        }

        var detectedAfter = clock.Elapsed - promotedAt;
        var after = await health.CheckHealthAsync(new HealthCheckContext());
        var errors = cluster.Recorder.AllEvents.Where(e => e.EventId == EfReplicaEventId.SplitBrainDetected).ToList();

        var reads = new List<int>();
        for (var i = 0; i < 40; i++)
        {
            await using var context = cluster.NewContext();
            reads.Add((await context.WhereAmI().SingleAsync()).Port);
        }

        TestContext.Out.WriteLine($"{form}: promotion took {promotedAt.TotalMilliseconds:0} ms; split brain reported {detectedAfter.TotalMilliseconds:0} ms after it (interval {Interval.TotalMilliseconds:0} ms, "
            + $"{detectedAfter / Interval:0.0} intervals); {reads.Count(port => port == servers.Standby.Port)} of {reads.Count} reads on the promoted node; health: {after.Description}");
        Assert.Multiple(() =>
        {
            Assert.That(cluster.Cluster.Monitor.SplitBrain, Is.Not.Null, "split brain reported");
            // Two probe intervals, plus generous slack for a round's probes on a loaded two-core machine.
            Assert.That(detectedAfter, Is.LessThan((2 * Interval) + TimeSpan.FromSeconds(3)), "reported within two probe intervals (with slack)");
            Assert.That(errors.Select(e => e.Level), Is.Not.Empty.And.All.EqualTo(LogLevel.Error), "Error event 2010");
            Assert.That(errors.FirstOrDefault().Message, Does.Contain($"port {servers.Primary.Port}").And.Contain($"port {servers.Standby.Port}"), "the event names both servers");
            Assert.That(after.Status, Is.EqualTo(HealthStatus.Unhealthy));
            Assert.That(after.Description, Does.Contain("split brain").And.Contain($"port {servers.Standby.Port}"));
            Assert.That(gauge.Read(), Is.EqualTo(2), "the writable-servers gauge");
            Assert.That(cluster.Cluster.Replicas[0].IsAdmitted, Is.False, "the promoted replica left the rotation");
            Assert.That(reads.Count(port => port == servers.Standby.Port), Is.Zero, "reads on the promoted node (inet_server_port())");
        });
    }

    /// <summary>Reads the <c>efreplica.split_brain.writable_servers</c> gauge of one cluster through a listener.</summary>
    private sealed class WritableServersGauge : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly string _cluster;
        private int? _value;

        public WritableServersGauge(string cluster)
        {
            _cluster = cluster;
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Name == EfReplicaDiagnostics.WritableServersGaugeName)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<int>((_, value, tags, _) =>
            {
                foreach (var tag in tags)
                {
                    if (tag.Key == EfReplicaDiagnostics.ClusterTag && (string?)tag.Value == _cluster)
                    {
                        _value = value;
                    }
                }
            });
            _listener.Start();
        }

        public int? Read()
        {
            _value = null;
            _listener.RecordObservableInstruments();
            return _value;
        }

        public void Dispose() => _listener.Dispose();
    }
}
