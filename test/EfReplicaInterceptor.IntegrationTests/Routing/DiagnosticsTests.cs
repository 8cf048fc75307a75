using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.TestSupport;

namespace EfReplicaInterceptor.IntegrationTests.Routing;

/// <summary>Every decision is visible as a log event, a counter and activity tags; shadow mode decides but moves nothing.</summary>
[NonParallelizable] // the meter listener sees every cluster in the process
public sealed class DiagnosticsTests : RoutingTestBase
{
    [TestCase(false)]
    [TestCase(true)]
    public async Task Decisions_are_counted_by_target_and_reason(bool async)
    {
        var counted = new ConcurrentDictionary<(string Target, string Reason, bool Shadow), long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == EfReplicaDiagnostics.MeterName && instrument.Name == EfReplicaDiagnostics.CommandsCounterName)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            string target = "", reason = "";
            var shadow = false;
            foreach (var tag in tags)
            {
                switch (tag.Key)
                {
                    case EfReplicaDiagnostics.TargetTag: target = (string)tag.Value!; break;
                    case EfReplicaDiagnostics.ReasonTag: reason = (string)tag.Value!; break;
                    case EfReplicaDiagnostics.ShadowTag: shadow = (bool)tag.Value!; break;
                }
            }

            counted.AddOrUpdate((target, reason, shadow), value, (_, old) => old + value);
        });
        listener.Start();

        await using var cluster = await TestCluster.CreateAsync(Servers, options => options.ReadYourWrites = ReadYourWritesMode.Primary);
        await using (var context = cluster.NewContext())
        {
            await WhereAmI(context, async);
            await WhereAmI(context, async);
            context.People.Add(new Person { Name = UniqueName("metrics") });
            _ = async ? await context.SaveChangesAsync() : context.SaveChanges();
            await WhereAmI(context, async);
        }

        Assert.That(counted[("replica", "read", false)], Is.EqualTo(2));
        Assert.That(counted[("primary", "write-statement", false)], Is.EqualTo(1));
        Assert.That(counted[("primary", "after-write", false)], Is.EqualTo(1));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Decision_is_tagged_on_the_current_activity(bool async)
    {
        using var source = new ActivitySource("EfReplicaInterceptor.Tests");
        using var activityListener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == source.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(activityListener);
        await using var context = Cluster.NewContext();

        using (var activity = source.StartActivity("read"))
        {
            await WhereAmI(context, async);
            Assert.That(activity!.GetTagItem(EfReplicaDiagnostics.TargetTag), Is.EqualTo("replica"));
            Assert.That(activity.GetTagItem(EfReplicaDiagnostics.ReasonTag), Is.EqualTo("read"));
            Assert.That(activity.GetTagItem(EfReplicaDiagnostics.ReplicaTag), Is.EqualTo(Servers.Standby.Name));
        }

        using (var activity = source.StartActivity("tagged"))
        {
            await context.WhereAmI().UsePrimaryQuery(async);
            Assert.That(activity!.GetTagItem(EfReplicaDiagnostics.TargetTag), Is.EqualTo("primary"));
            Assert.That(activity.GetTagItem(EfReplicaDiagnostics.ReasonTag), Is.EqualTo("tagged-primary"));
        }
    }

    [Test]
    public async Task Routing_log_events_have_stable_ids_and_no_secrets()
    {
        await using var context = Cluster.NewContext();
        await WhereAmI(context, async: true);
        context.People.Add(new Person { Name = "secret-parameter-value" });
        await context.SaveChangesAsync();

        var routed = Recorder.AllEvents.Where(e => e.EventId == 1000).ToList();
        Assert.That(routed, Has.Count.EqualTo(2));
        Assert.That(routed.Select(e => e.Level), Is.All.EqualTo(Microsoft.Extensions.Logging.LogLevel.Debug));
        Assert.That(routed[0].Message, Does.Contain("routed to replica (read)").And.Contain("via replica 'standby1'"));
        Assert.That(routed[1].Message, Does.Contain("routed to primary (write-statement)"));
        var password = new Npgsql.NpgsqlConnectionStringBuilder(Servers.Primary.ConnectionString).Password!;
        Assert.That(Recorder.AllEvents.Select(e => e.Message), Has.None.Contains("INSERT"), "the library never logs SQL");
        Assert.That(Recorder.EverythingLogged, Is.Not.Empty.And.None.Contains(password).And.None.Contains("secret-parameter-value"),
            "neither the library nor Npgsql (through the data sources it builds) logs a password or a parameter value");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Shadow_mode_reports_every_decision_but_sends_everything_to_the_primary(bool async)
    {
        await using var shadow = await TestCluster.CreateAsync(Servers, options => options.ShadowMode = true);
        await using var context = shadow.NewContext();

        AssertOnPrimary(await WhereAmI(context, async));
        AssertOnPrimary(await context.WhereAmI().UsePrimaryQuery(async));

        Assert.That(shadow.Recorder.Commands, Is.EqualTo(new[]
        {
            new RoutedCommand(1001, "LinqQuery", "replica", "read"),
            new RoutedCommand(1001, "LinqQuery", "primary", "tagged-primary"),
        }));
    }
}

internal static class QueryExtensions
{
    public static async Task<ServerSide> UsePrimaryQuery(this IQueryable<ServerSide> query, bool async)
    {
        var tagged = Microsoft.EntityFrameworkCore.EfReplicaQueryableExtensions.UsePrimary(query);
        return async ? await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.SingleAsync(tagged) : tagged.Single();
    }
}
