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
    private readonly WaitSums _waits = new();

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
        _listener.SetMeasurementEventCallback<double>((instrument, value, _, _) =>
        {
            if (instrument.Name == EfReplicaDiagnostics.LongForkWaitDurationHistogramName)
            {
                lock (_waits)
                {
                    _waits.Count++;
                    _waits.Total += value;
                    _waits.Longest = Math.Max(_waits.Longest, value);
                }
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

    /// <summary>Moves of a scope from a standby to the primary checked for Long Fork.</summary>
    public long LongForkChecks => Get(EfReplicaDiagnostics.LongForkChecksCounterName);

    /// <summary>Round trips the Long Fork checks and waits spent.</summary>
    public long LongForkRoundTrips => Get(EfReplicaDiagnostics.LongForkRoundTripsCounterName);

    /// <summary>Long Fork checks that found something to wait for.</summary>
    public long LongForkWaits
    {
        get
        {
            lock (_waits)
            {
                return _waits.Count;
            }
        }
    }

    /// <summary>How long the Long Fork waits lasted in all.</summary>
    public TimeSpan LongForkWaited
    {
        get
        {
            lock (_waits)
            {
                return TimeSpan.FromSeconds(_waits.Total);
            }
        }
    }

    /// <summary>The longest Long Fork wait.</summary>
    public TimeSpan LongForkLongestWait
    {
        get
        {
            lock (_waits)
            {
                return TimeSpan.FromSeconds(_waits.Longest);
            }
        }
    }

    /// <summary>Every count, by instrument (and, for commands and fallbacks, by target and reason too).</summary>
    public IReadOnlyDictionary<string, long> All => new Dictionary<string, long>(_counts);

    public long Get(string name) => _counts.GetValueOrDefault(name);

    public void Dispose() => _listener.Dispose();

    private sealed class WaitSums
    {
        public long Count;
        public double Total;
        public double Longest;
    }
}
