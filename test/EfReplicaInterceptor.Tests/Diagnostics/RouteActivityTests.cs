using System.Diagnostics;
using System.Diagnostics.Metrics;
using EfReplicaInterceptor.Diagnostics;

namespace EfReplicaInterceptor.Tests.Diagnostics;

/// <summary>
/// The telemetry of a routed command costs nothing while nobody listens: no span, no tag list, no server label, no
/// allocation. With a listener, the span and the counter are there. (The integration tests prove the tags on real servers:
/// <c>OpenTelemetryTests</c>.)
/// </summary>
[NonParallelizable] // listeners are process-wide: a test that listens would make the other's "nobody listens" false
public sealed class RouteActivityTests
{
    [Test]
    public void Nothing_is_allocated_for_a_routed_command_while_nothing_listens()
    {
        using var metrics = new EfReplicaMetrics();
        var server = new ServerAddress("db.example", 5432);
        RouteOnce(metrics, server); // JIT and statics first

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1_000; i++)
        {
            RouteOnce(metrics, server);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.That(RouteActivity.Start(), Is.Null, "no listener, no span");
        Assert.That(allocated, Is.Zero, "bytes allocated by 1,000 routed commands' telemetry with nothing listening");
    }

    [Test]
    public void A_listener_gets_the_route_span_and_a_counted_command_with_its_server()
    {
        using var activities = new ActivityListener
        {
            ShouldListenTo = source => source.Name == EfReplicaDiagnostics.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(activities);
        var servers = new List<object?>();
        using var meters = new MeterListener();
        meters.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == EfReplicaDiagnostics.MeterName && instrument.Name == EfReplicaDiagnostics.CommandsCounterName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        meters.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == EfReplicaDiagnostics.ServerTag)
                {
                    servers.Add(tag.Value);
                }
            }
        });
        meters.Start();
        using var metrics = new EfReplicaMetrics();

        using (var activity = RouteActivity.Start())
        {
            Assert.That(activity, Is.Not.Null);
            Assert.That(activity!.OperationName, Is.EqualTo(EfReplicaDiagnostics.RouteActivityName));
            Assert.That(activity.Kind, Is.EqualTo(ActivityKind.Internal));
            metrics.CommandRouted("c", RoutingTarget.Replica, RoutingReason.Read, shadow: false, new ServerAddress("::1", 5433));
        }

        Assert.That(servers, Is.EqualTo(new[] { "[::1]:5433" }));
    }

    [Test]
    public void A_server_is_labelled_host_colon_port_once_per_address()
    {
        var first = new ServerAddress("10.0.0.7", 6432).Label();

        Assert.That(first, Is.EqualTo("10.0.0.7:6432"));
        Assert.That(new ServerAddress("10.0.0.7", 6432).Label(), Is.SameAs(first), "the label is cached");
        Assert.That(ServerAddress.None.Label(), Is.EqualTo("unknown"));
    }

    private static void RouteOnce(EfReplicaMetrics metrics, ServerAddress server)
    {
        var activity = RouteActivity.Start();
        try
        {
            metrics.CommandRouted("cluster", RoutingTarget.Replica, RoutingReason.Read, shadow: false, server);
        }
        finally
        {
            activity?.Dispose();
        }
    }
}
