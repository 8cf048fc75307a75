using System.Diagnostics;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.TestSupport;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace EfReplicaInterceptor.IntegrationTests.Routing;

/// <summary>
/// The OpenTelemetry wiring a user writes (docs/telemetry.md): <c>AddSource(EfReplicaDiagnostics.ActivitySourceName)</c> and
/// <c>AddMeter(EfReplicaDiagnostics.MeterName)</c>, with the SDK's in-memory exporter, on the real primary and standby. A
/// routed command is an <c>efreplica.route</c> span and a point of the <c>efreplica.commands</c> counter, both tagged with
/// the target, the reason and the server that ran it (checked against the server's own port).
/// </summary>
[NonParallelizable] // the tracer and meter providers see every cluster in the process
public sealed class OpenTelemetryTests : RoutingTestBase
{
    private readonly List<Activity> _spans = [];
    private readonly List<MetricSnapshot> _metrics = [];
    private TracerProvider? _tracer;
    private MeterProvider? _meter;

    [SetUp]
    public void StartProviders()
    {
        _spans.Clear(); // NUnit runs every test of the class on one instance
        _metrics.Clear();
        _tracer = Sdk.CreateTracerProviderBuilder()
            .AddSource(EfReplicaDiagnostics.ActivitySourceName)
            .AddInMemoryExporter(_spans)
            .Build();
        _meter = Sdk.CreateMeterProviderBuilder()
            .AddMeter(EfReplicaDiagnostics.MeterName)
            .AddInMemoryExporter(_metrics)
            .Build();
    }

    [TearDown]
    public void StopProviders()
    {
        _tracer?.Dispose();
        _meter?.Dispose();
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task A_routed_read_is_a_span_tagged_with_target_reason_and_server(bool async)
    {
        await using (var context = Cluster.NewContext())
        {
            AssertOnReplica(await WhereAmI(context, async));
            AssertOnPrimary(await context.WhereAmI().UsePrimaryQuery(async));
        }

        _tracer!.ForceFlush();
        var routes = _spans.Where(span => span.OperationName == EfReplicaDiagnostics.RouteActivityName).ToList();
        Assert.That(routes, Has.Count.EqualTo(2), "one span per routed command");
        Assert.That(routes.Select(span => span.Source.Name), Is.All.EqualTo(EfReplicaDiagnostics.ActivitySourceName));
        Assert.That(routes.Select(span => span.Kind), Is.All.EqualTo(ActivityKind.Internal));
        Assert.That(routes.Select(span => span.Status), Is.All.EqualTo(ActivityStatusCode.Unset));

        var read = routes[0];
        Assert.That(read.GetTagItem(EfReplicaDiagnostics.TargetTag), Is.EqualTo("replica"));
        Assert.That(read.GetTagItem(EfReplicaDiagnostics.ReasonTag), Is.EqualTo("read"));
        Assert.That(read.GetTagItem(EfReplicaDiagnostics.ServerTag), Is.EqualTo(Label(Servers.Standby)));
        Assert.That(read.GetTagItem(EfReplicaDiagnostics.ReplicaTag), Is.EqualTo(Servers.Standby.Name));

        var tagged = routes[1];
        Assert.That(tagged.GetTagItem(EfReplicaDiagnostics.TargetTag), Is.EqualTo("primary"));
        Assert.That(tagged.GetTagItem(EfReplicaDiagnostics.ReasonTag), Is.EqualTo("tagged-primary"));
        Assert.That(tagged.GetTagItem(EfReplicaDiagnostics.ServerTag), Is.EqualTo(Label(Servers.Primary)));
        Assert.That(tagged.GetTagItem(EfReplicaDiagnostics.ReplicaTag), Is.Null);

        var password = new NpgsqlConnectionStringBuilder(Servers.Primary.ConnectionString).Password!;
        Assert.That(routes.SelectMany(span => span.TagObjects).Select(tag => tag.Value?.ToString()), Has.None.Contains(password),
            "no tag carries a password");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task A_routed_read_is_counted_with_the_same_tags(bool async)
    {
        await using (var context = Cluster.NewContext())
        {
            AssertOnReplica(await WhereAmI(context, async));
            AssertOnReplica(await WhereAmI(context, async));
            AssertOnPrimary(await context.WhereAmI().UsePrimaryQuery(async));
        }

        _meter!.ForceFlush();
        var commands = _metrics.Last(metric => metric.Name == EfReplicaDiagnostics.CommandsCounterName);
        Assert.That(commands.Unit, Is.EqualTo("{command}"));
        var counted = new Dictionary<(string?, string?, string?), long>();
        foreach (var point in commands.MetricPoints)
        {
            var tags = new Dictionary<string, object?>();
            foreach (var tag in point.Tags)
            {
                tags[tag.Key] = tag.Value;
            }

            var key = (tags.GetValueOrDefault(EfReplicaDiagnostics.TargetTag) as string,
                tags.GetValueOrDefault(EfReplicaDiagnostics.ReasonTag) as string,
                tags.GetValueOrDefault(EfReplicaDiagnostics.ServerTag) as string);
            counted[key] = counted.GetValueOrDefault(key) + point.GetSumLong();
        }

        Assert.That(counted, Is.EquivalentTo(new Dictionary<(string?, string?, string?), long>
        {
            [("replica", "read", Label(Servers.Standby))] = 2,
            [("primary", "tagged-primary", Label(Servers.Primary))] = 1,
        }));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task The_server_of_a_multi_host_primary_is_the_host_the_connection_reached(bool async)
    {
        // The standby is listed first: Npgsql tries it, finds it is not a primary, and connects to the primary.
        var primary = new NpgsqlConnectionStringBuilder(TestCluster.WithPool(Servers.Primary.ConnectionString, TestCluster.DefaultMaxPoolSize))
        {
            Host = $"{Label(Servers.Standby)},{Label(Servers.Primary)}",
            TargetSessionAttributes = "primary",
        }.ConnectionString;
        await using (var cluster = await TestCluster.CreateAsync(Servers, options => options.Primary = primary, withReplicas: false))
        await using (var context = cluster.NewContext())
        {
            AssertOnPrimary(await WhereAmI(context, async)); // run by the library on a connection from the primary's data source
            await context.Database.OpenConnectionAsync();
            AssertOnPrimary(await context.WhereAmI().UsePrimaryQuery(async)); // run by EF on its own connection, held open
        }

        _tracer!.ForceFlush();
        var routes = _spans.Where(span => span.OperationName == EfReplicaDiagnostics.RouteActivityName).ToList();
        Assert.That(routes.Select(span => (span.GetTagItem(EfReplicaDiagnostics.ReasonTag), span.GetTagItem(EfReplicaDiagnostics.ServerTag))),
            Is.EqualTo(new[] { ((object)"no-replica", (object)Label(Servers.Primary)), ("tagged-primary", Label(Servers.Primary)) }),
            "not the list of hosts: the one the connection reached");
    }

    [Test]
    public async Task A_read_that_fails_everywhere_is_a_span_with_an_error_status()
    {
        await using (var context = Cluster.NewContext())
        {
            Assert.That(() => context.People.FromSqlRaw("SELECT * FROM no_such_table").ToListAsync(),
                Throws.InstanceOf<PostgresException>().With.Property(nameof(PostgresException.SqlState)).EqualTo("42P01"));
        }

        _tracer!.ForceFlush();
        var route = _spans.Single(span => span.OperationName == EfReplicaDiagnostics.RouteActivityName);
        Assert.That(route.Status, Is.EqualTo(ActivityStatusCode.Error));
        Assert.That(route.GetTagItem("error.type"), Is.EqualTo(typeof(PostgresException).FullName));
    }

    private static string Label(Testing.PostgresServer server) => $"{server.Host}:{server.Port}";
}
