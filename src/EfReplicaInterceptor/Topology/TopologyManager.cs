using EfReplicaInterceptor.Diagnostics;
using Microsoft.Extensions.Logging;

namespace EfReplicaInterceptor.Topology;

/// <summary>
/// Turns each snapshot of a <see cref="ITopologySource"/> into the cluster's replica set: a member seen before (same name
/// and connection string) keeps its endpoint, and so its state (availability, incarnation, what it replayed, the scopes
/// that read there); a new one gets an endpoint built by the composition root and its own probe loop; one that is gone (or
/// re-pointed, or no longer takes reads) leaves the set at once, its loop stops, and it is retired: reads already running
/// there finish, then its data source is disposed. The set is swapped as a whole (<see cref="ReplicaMembership"/>). The one
/// writer of the set; applies one snapshot at a time.
/// </summary>
internal sealed class TopologyManager : IAsyncDisposable
{
    private readonly string _cluster;
    private readonly ReplicaMembership _membership;
    private readonly ClusterMonitor _monitor;
    private readonly Func<TopologyMember, int, ReplicaEndpoint> _build;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly List<(ReplicaEndpoint Replica, Task Retired)> _retiring = [];
    private Dictionary<string, ReplicaEndpoint> _current = new(StringComparer.Ordinal);
    private string? _leader;
    private bool _disposed;

    /// <param name="cluster">The cluster's name, for logs.</param>
    /// <param name="membership">The replica set to publish to.</param>
    /// <param name="monitor">The monitor whose loops follow the set.</param>
    /// <param name="build">Builds a member's endpoint in the given slot (the composition root's one way to build one).</param>
    /// <param name="timeProvider">The clock (how long a drain took).</param>
    /// <param name="loggerFactory">Where events go.</param>
    public TopologyManager(string cluster, ReplicaMembership membership, ClusterMonitor monitor, Func<TopologyMember, int, ReplicaEndpoint> build, TimeProvider timeProvider, ILoggerFactory loggerFactory)
    {
        _cluster = cluster;
        _membership = membership;
        _monitor = monitor;
        _build = build;
        _timeProvider = timeProvider;
        _logger = loggerFactory.CreateLogger(Log.TopologyCategory);
    }

    /// <summary>The member the source last named as the primary (Patroni's leader), or null.</summary>
    public string? Leader
    {
        get
        {
            lock (_gate)
            {
                return _leader;
            }
        }
    }

    /// <summary>Replicas that left the set and are still draining.</summary>
    public int Draining
    {
        get
        {
            lock (_gate)
            {
                _retiring.RemoveAll(static retiring => retiring.Retired.IsCompleted);
                return _retiring.Count;
            }
        }
    }

    /// <summary>
    /// Makes <paramref name="snapshot"/> the cluster's topology. <paramref name="initial"/>: the first one, at start-up (the
    /// replicas are not announced one by one).
    /// </summary>
    public void Apply(TopologySnapshot snapshot, bool initial = false)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            var next = new Dictionary<string, ReplicaEndpoint>(StringComparer.Ordinal);
            var replicas = new List<ReplicaEndpoint>();
            var weights = new List<int>();
            var added = new List<ReplicaEndpoint>();
            foreach (var member in snapshot.Watched)
            {
                if (next.ContainsKey(member.Key))
                {
                    continue; // listed twice: once is enough
                }

                if (!_current.TryGetValue(member.Key, out var endpoint))
                {
                    if (FreeSlot(next) is not { } slot)
                    {
                        Log.ReplicaNotAdded(_logger, member.Name, _cluster, $"the cluster already has {Configuration.EfReplicaOptionsValidator.MaxReplicas} replicas");
                        continue;
                    }

                    try
                    {
                        endpoint = _build(member, slot);
                    }
                    catch (Exception exception) when (exception is ArgumentException or FormatException or InvalidOperationException)
                    {
                        Log.ReplicaNotAdded(_logger, member.Name, _cluster, $"its connection string could not be used ({exception.GetType().Name})");
                        continue;
                    }

                    added.Add(endpoint);
                }

                next[member.Key] = endpoint;
                replicas.Add(endpoint);
                weights.Add(member.Weight);
            }

            var removed = _current.Where(pair => !next.ContainsKey(pair.Key)).Select(static pair => pair.Value).ToList();
            var previous = _membership.Current;
            var changed = added.Count > 0 || removed.Count > 0 || !previous.Weights.AsSpan().SequenceEqual(weights.ToArray())
                || !previous.Replicas.AsSpan().SequenceEqual(replicas.ToArray());

            // Loops of new replicas first (a replica is probed as soon as it is known), then the set, then the departures.
            try
            {
                foreach (var replica in added)
                {
                    _monitor.Add(replica);
                }
            }
            catch (ObjectDisposedException)
            {
                // The cluster is stopping: the topology no longer changes; what was built here is let go.
                foreach (var replica in added)
                {
                    replica.DataSource.Dispose();
                }

                return;
            }

            if (changed)
            {
                _membership.Publish(new ReplicaSetSnapshot([.. replicas], [.. weights], previous.Version + 1));
            }

            _current = next;
            if (!initial)
            {
                foreach (var replica in added)
                {
                    Log.ReplicaJoinedTopology(_logger, replica.Name, _cluster, snapshot.Source);
                }
            }

            foreach (var replica in removed)
            {
                // Out of rotation now, for every scope that still holds it too; nothing new starts on it from here.
                var drained = replica.Server.Usage.CloseAsync();
                Log.ReplicaLeftTopology(_logger, replica.Name, _cluster, snapshot.Source);
                _retiring.Add((replica, RetireAsync(replica, drained)));
            }

            var leader = snapshot.Leader?.Name;
            if (leader is not null && leader != _leader)
            {
                if (_leader is not null || !initial)
                {
                    Log.LeaderChanged(_logger, _cluster, leader, _leader ?? "none", snapshot.Source);
                }

                _leader = leader;
            }
        }
    }

    /// <summary>How long a disposal waits for replicas that left to drain before it disposes their data sources anyway.</summary>
    private static readonly TimeSpan DrainOnDispose = TimeSpan.FromSeconds(5);

    /// <summary>Waits until every replica that left the set so far has drained and its data source is disposed.</summary>
    public Task WhenDrainedAsync()
    {
        lock (_gate)
        {
            return Task.WhenAll(_retiring.Select(static retiring => retiring.Retired));
        }
    }

    /// <summary>The lowest slot no replica of <paramref name="next"/> uses, preferring one no draining replica holds either.</summary>
    private int? FreeSlot(Dictionary<string, ReplicaEndpoint> next)
    {
        ulong used = 0;
        foreach (var replica in next.Values)
        {
            used |= 1UL << replica.Index;
        }

        // A kept replica not yet moved into next holds its slot too.
        foreach (var replica in _current.Values)
        {
            used |= 1UL << replica.Index;
        }

        var draining = used;
        foreach (var (replica, retired) in _retiring)
        {
            if (!retired.IsCompleted)
            {
                draining |= 1UL << replica.Index;
            }
        }

        for (var pass = 0; pass < 2; pass++)
        {
            var taken = pass == 0 ? draining : used;
            for (var slot = 0; slot < Configuration.EfReplicaOptionsValidator.MaxReplicas; slot++)
            {
                if ((taken & (1UL << slot)) == 0)
                {
                    return slot;
                }
            }
        }

        return null;
    }

    private async Task RetireAsync(ReplicaEndpoint replica, Task drained)
    {
        var started = _timeProvider.GetTimestamp();
        await Task.Yield(); // never inside the caller's lock
        try
        {
            await _monitor.RemoveAsync(replica).ConfigureAwait(false);
            await drained.ConfigureAwait(false);
            await replica.RetireAsync().ConfigureAwait(false);
            Log.ReplicaDrained(_logger, replica.Name, _cluster, _timeProvider.GetElapsedTime(started).TotalSeconds);
        }
        catch (Exception exception)
        {
            Log.ReplicaDrainFailed(_logger, exception, replica.Name, _cluster);
        }
    }

    /// <summary>Waits for the replicas still draining, then disposes the data sources of the current ones (the monitor is stopped first).</summary>
    public async ValueTask DisposeAsync()
    {
        Dictionary<string, ReplicaEndpoint> current;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            current = _current;
        }

        await DrainOrAbandonAsync().ConfigureAwait(false);
        foreach (var replica in current.Values)
        {
            await replica.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Waits for the replicas still draining, at most <see cref="DrainOnDispose"/>: a reader the application still holds on
    /// a replica that left keeps it in use until the reader is disposed, and a disposal must not wait on the application
    /// without a bound. Past it, their data sources go with the cluster (breaking such a reader).
    /// </summary>
    private async Task DrainOrAbandonAsync()
    {
        try
        {
            await WhenDrainedAsync().WaitAsync(DrainOnDispose, _timeProvider).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            List<ReplicaEndpoint> left;
            lock (_gate)
            {
                left = [.. _retiring.Where(static retiring => !retiring.Retired.IsCompleted).Select(static retiring => retiring.Replica)];
            }

            foreach (var replica in left)
            {
                await replica.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <inheritdoc cref="DisposeAsync"/>
    public void Dispose()
    {
        Dictionary<string, ReplicaEndpoint> current;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            current = _current;
        }

        DrainOrAbandonAsync().GetAwaiter().GetResult();
        foreach (var replica in current.Values)
        {
            replica.DataSource.Dispose();
        }
    }
}
