using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace EfReplicaInterceptor.Diagnostics;

/// <summary>The instruments of one process. Created once; <see cref="Counter{T}.Add(T, in TagList)"/> with a <see cref="TagList"/> does not allocate.</summary>
internal sealed class EfReplicaMetrics : IDisposable
{
    private static readonly object True = true;
    private static readonly object False = false;

    private readonly Meter _meter;
    private readonly Counter<long> _commands;
    private readonly Counter<long> _fallbacks;

    public EfReplicaMetrics(IMeterFactory? meterFactory = null)
    {
        _meter = meterFactory?.Create(EfReplicaDiagnostics.MeterName) ?? new Meter(EfReplicaDiagnostics.MeterName);
        _commands = _meter.CreateCounter<long>(EfReplicaDiagnostics.CommandsCounterName, "{command}", "Commands routed, by target and reason.");
        _fallbacks = _meter.CreateCounter<long>(EfReplicaDiagnostics.ReplicaFallbacksCounterName, "{command}", "Reads meant for a replica that ran on the primary because the replica failed for them.");
    }

    public Meter Meter => _meter;

    public void CommandRouted(string cluster, RoutingTarget target, RoutingReason reason, bool shadow)
    {
        if (!_commands.Enabled)
        {
            return;
        }

        var tags = new TagList
        {
            { EfReplicaDiagnostics.ClusterTag, cluster },
            { EfReplicaDiagnostics.TargetTag, RoutingReasons.GetName(target) },
            { EfReplicaDiagnostics.ReasonTag, RoutingReasons.GetName(reason) },
            { EfReplicaDiagnostics.ShadowTag, shadow ? True : False },
        };
        _commands.Add(1, tags);
    }

    public void ReplicaFallback(string cluster, string replica)
    {
        if (!_fallbacks.Enabled)
        {
            return;
        }

        var tags = new TagList
        {
            { EfReplicaDiagnostics.ClusterTag, cluster },
            { EfReplicaDiagnostics.ReplicaTag, replica },
        };
        _fallbacks.Add(1, tags);
    }

    public void Dispose() => _meter.Dispose();
}
