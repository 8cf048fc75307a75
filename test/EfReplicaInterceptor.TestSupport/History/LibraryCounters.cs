using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using EfReplicaInterceptor.Diagnostics;

namespace EfReplicaInterceptor.TestSupport.History;

/// <summary>
/// Sums the library's counters (<c>efreplica.*</c>) while it lives: the primary round trips read-your-writes spends, the replica
/// checks, the reads that fell back to the primary. Meters are process-wide: run one cluster at a time while counting.
/// </summary>
public sealed class LibraryCounters : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _counts = new();

    public LibraryCounters()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == EfReplicaDiagnostics.MeterName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            _counts.AddOrUpdate(instrument.Name, value, (_, old) => old + value);
            if (instrument.Name is EfReplicaDiagnostics.ReadFallbacksCounterName or EfReplicaDiagnostics.CommandsCounterName)
            {
                string? target = null, reason = null;
                foreach (var tag in tags)
                {
                    target = tag.Key == EfReplicaDiagnostics.TargetTag ? tag.Value?.ToString() : target;
                    reason = tag.Key == EfReplicaDiagnostics.ReasonTag ? tag.Value?.ToString() : reason;
                }

                _counts.AddOrUpdate($"{instrument.Name}/{target}/{reason}", value, (_, old) => old + value);
            }
        });
        _listener.Start();
    }

    /// <summary>Primary round trips to capture a WAL position (read-your-writes).</summary>
    public long PositionCaptures => Get(EfReplicaDiagnostics.PositionCapturesCounterName);

    /// <summary>Replica round trips to check a replayed position.</summary>
    public long ReplayChecks => Get(EfReplicaDiagnostics.ReplayChecksCounterName);

    /// <summary>Plain reads that ran on the primary because no replica could take them.</summary>
    public long ReadFallbacks => Get(EfReplicaDiagnostics.ReadFallbacksCounterName);

    /// <summary>Every count, by instrument (and, for commands and fallbacks, by target and reason too).</summary>
    public IReadOnlyDictionary<string, long> All => new Dictionary<string, long>(_counts);

    public long Get(string name) => _counts.GetValueOrDefault(name);

    public void Dispose() => _listener.Dispose();
}
