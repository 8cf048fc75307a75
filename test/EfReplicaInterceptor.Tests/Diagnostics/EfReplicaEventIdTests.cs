using System.Reflection;
using EfReplicaInterceptor.Diagnostics;
using Microsoft.Extensions.Logging;

namespace EfReplicaInterceptor.Tests.Diagnostics;

/// <summary>The public event id catalogue and the log methods say the same: one constant per event, unique, named as the event.</summary>
public sealed class EfReplicaEventIdTests
{
    private static readonly IReadOnlyDictionary<string, int> Catalogue = typeof(EfReplicaEventId)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .ToDictionary(field => field.Name, field => (int)field.GetRawConstantValue()!);

    private static readonly IReadOnlyList<LoggerMessageAttribute> Events = typeof(EfReplicaCluster).Assembly
        .GetType("EfReplicaInterceptor.Diagnostics.Log")!
        .GetMethods(BindingFlags.Public | BindingFlags.Static)
        .Select(method => method.GetCustomAttribute<LoggerMessageAttribute>())
        .OfType<LoggerMessageAttribute>()
        .ToList();

    [Test]
    public void Every_log_event_has_its_constant_and_every_constant_an_event()
    {
        Assert.That(Events.Select(e => (e.EventName, e.EventId)).OrderBy(e => e.EventId),
            Is.EqualTo(Catalogue.Select(c => ((string?)c.Key, c.Value)).OrderBy(c => c.Value)));
    }

    [Test]
    public void Ids_are_unique_and_in_the_range_of_their_category()
    {
        Assert.That(Catalogue.Values, Is.Unique);
        Assert.That(Catalogue.Values, Is.All.InRange(1000, 3999));
    }
}
