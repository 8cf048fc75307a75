using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace EfReplicaInterceptor.Diagnostics;

/// <summary>The instruments of one cluster. <see cref="Counter{T}.Add(T, in TagList)"/> with a <see cref="TagList"/> does not allocate.</summary>
internal sealed class EfReplicaMetrics : IDisposable
{
    private static readonly object True = true;
    private static readonly object False = false;

    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _commands;
    private readonly Counter<long> _fallbacks;
    private readonly Counter<long> _replicaErrors;
    private readonly Counter<long> _positionCaptures;
    private readonly Counter<long> _replayChecks;
    private readonly Counter<long> _standbyReplayReports;
    private readonly Counter<long> _longForkChecks;
    private readonly Counter<long> _longForkRoundTrips;
    private readonly Histogram<double> _longForkWaits;

    public EfReplicaMetrics(IMeterFactory? meterFactory = null)
    {
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(EfReplicaDiagnostics.MeterName) ?? new Meter(EfReplicaDiagnostics.MeterName);
        _commands = _meter.CreateCounter<long>(EfReplicaDiagnostics.CommandsCounterName, "{command}", "Commands routed, by target and reason.");
        _fallbacks = _meter.CreateCounter<long>(EfReplicaDiagnostics.ReadFallbacksCounterName, "{command}", "Plain reads that ran on the primary because no replica could take them, by reason.");
        _replicaErrors = _meter.CreateCounter<long>(EfReplicaDiagnostics.ReplicaErrorsCounterName, "{error}", "Reads that failed on a replica with a failover error and moved on.");
        _positionCaptures = _meter.CreateCounter<long>(EfReplicaDiagnostics.PositionCapturesCounterName, "{query}", "Round trips to the primary to capture the WAL position after a unit of work (read-your-writes).");
        _replayChecks = _meter.CreateCounter<long>(EfReplicaDiagnostics.ReplayChecksCounterName, "{query}", "Round trips to a replica to check its replayed WAL position for a read after a write.");
        _standbyReplayReports = _meter.CreateCounter<long>(EfReplicaDiagnostics.StandbyReplayReportsCounterName, "{report}", "Standbys' replay positions read from the primary's pg_stat_replication with a position capture and credited to a replica.");
        _longForkChecks = _meter.CreateCounter<long>(EfReplicaDiagnostics.LongForkChecksCounterName, "{check}", "Moves of a scope from a standby to the primary checked for transactions the standby showed and the primary did not yet.");
        _longForkRoundTrips = _meter.CreateCounter<long>(EfReplicaDiagnostics.LongForkRoundTripsCounterName, "{query}", "Round trips the Long Fork checks and waits spent.");
        _longForkWaits = _meter.CreateHistogram<double>(EfReplicaDiagnostics.LongForkWaitDurationHistogramName, "s", "How long a read waited for the primary to show what a standby already showed committed.");
    }

    public void CommandRouted(string cluster, RoutingTarget target, RoutingReason reason, bool shadow, ServerAddress server)
    {
        if (_commands.Enabled)
        {
            var tags = new TagList
            {
                { EfReplicaDiagnostics.ClusterTag, cluster },
                { EfReplicaDiagnostics.TargetTag, RoutingReasons.GetName(target) },
                { EfReplicaDiagnostics.ReasonTag, RoutingReasons.GetName(reason) },
                { EfReplicaDiagnostics.ServerTag, server.Label() },
                { EfReplicaDiagnostics.ShadowTag, shadow ? True : False },
            };
            _commands.Add(1, tags);
        }

        if (_fallbacks.Enabled && RoutingReasonTable.Of(reason).CountsAsFallback)
        {
            var tags = new TagList
            {
                { EfReplicaDiagnostics.ClusterTag, cluster },
                { EfReplicaDiagnostics.ReasonTag, RoutingReasons.GetName(reason) },
            };
            _fallbacks.Add(1, tags);
        }
    }

    public void PositionCaptured(string cluster)
    {
        if (_positionCaptures.Enabled)
        {
            _positionCaptures.Add(1, new KeyValuePair<string, object?>(EfReplicaDiagnostics.ClusterTag, cluster));
        }
    }

    public void ReplayChecked(string cluster)
    {
        if (_replayChecks.Enabled)
        {
            _replayChecks.Add(1, new KeyValuePair<string, object?>(EfReplicaDiagnostics.ClusterTag, cluster));
        }
    }

    public void StandbyReplayReported(string cluster, int reports)
    {
        if (reports > 0 && _standbyReplayReports.Enabled)
        {
            _standbyReplayReports.Add(reports, new KeyValuePair<string, object?>(EfReplicaDiagnostics.ClusterTag, cluster));
        }
    }

    /// <summary>One Long Fork check: its round trips, and how long it waited when it found something to wait for.</summary>
    public void LongForkChecked(string cluster, int roundTrips, TimeSpan? waited, bool expired, string transactions)
    {
        var clusterTag = new KeyValuePair<string, object?>(EfReplicaDiagnostics.ClusterTag, cluster);
        if (_longForkChecks.Enabled)
        {
            _longForkChecks.Add(1, clusterTag, new KeyValuePair<string, object?>(EfReplicaDiagnostics.LongForkTransactionsTag, transactions));
        }

        if (_longForkRoundTrips.Enabled && roundTrips > 0)
        {
            _longForkRoundTrips.Add(roundTrips, clusterTag);
        }

        if (_longForkWaits.Enabled && waited is { } duration)
        {
            _longForkWaits.Record(duration.TotalSeconds, clusterTag, new KeyValuePair<string, object?>(EfReplicaDiagnostics.OutcomeTag, expired ? "deadline" : "seen"));
        }
    }

    public void ReplicaError(string cluster, string replica, string errorKind)
    {
        if (!_replicaErrors.Enabled)
        {
            return;
        }

        var tags = new TagList
        {
            { EfReplicaDiagnostics.ClusterTag, cluster },
            { EfReplicaDiagnostics.ReplicaTag, replica },
            { EfReplicaDiagnostics.ErrorKindTag, errorKind },
        };
        _replicaErrors.Add(1, tags);
    }

    /// <summary>Publishes the monitor's view of each replica as gauges (read when a listener collects, never on the command path).</summary>
    public void ObserveReplicas(string cluster, Func<ReplicaGauge[]> replicas)
    {
        _meter.CreateObservableGauge(EfReplicaDiagnostics.ReplicaLagGaugeName, () => Observe(cluster, replicas(), static replica =>
            replica.Lag is { } lag ? lag.TotalSeconds : null), "s", "Replication lag of each replica, in seconds.");
        _meter.CreateObservableGauge(EfReplicaDiagnostics.ReplicaLagBytesGaugeName, () => Observe(cluster, replicas(), static replica =>
            replica.LagBytes is { } bytes ? bytes : null), "By", "Replication lag of each replica, in bytes of WAL not yet replayed.");
        _meter.CreateObservableGauge(EfReplicaDiagnostics.ReplicaUpGaugeName, () => Observe(cluster, replicas(), static replica =>
            replica.InRotation ? 1 : 0), "1", "1 while the replica is in rotation, else 0.");
    }

    /// <summary>Publishes how many servers of the cluster accept writes (the monitor's last round; 2 or more is a split brain).</summary>
    public void ObserveWritableServers(string cluster, Func<int> writableServers)
        => _meter.CreateObservableGauge(EfReplicaDiagnostics.WritableServersGaugeName, () => new Measurement<int>(writableServers(),
            new KeyValuePair<string, object?>(EfReplicaDiagnostics.ClusterTag, cluster)), "{server}", "Servers of the cluster that accept writes; 2 or more is a split brain.");

    private static IEnumerable<Measurement<double>> Observe(string cluster, ReplicaGauge[] replicas, Func<ReplicaGauge, double?> value)
    {
        foreach (var replica in replicas)
        {
            if (value(replica) is { } measured)
            {
                yield return new Measurement<double>(measured,
                    new KeyValuePair<string, object?>(EfReplicaDiagnostics.ClusterTag, cluster),
                    new KeyValuePair<string, object?>(EfReplicaDiagnostics.ReplicaTag, replica.Name));
            }
        }
    }

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }
}

/// <summary>One replica's state as the gauges publish it.</summary>
internal readonly record struct ReplicaGauge(string Name, TimeSpan? Lag, long? LagBytes, bool InRotation);
