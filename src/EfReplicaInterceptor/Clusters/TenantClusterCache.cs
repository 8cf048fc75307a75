using EfReplicaInterceptor.Diagnostics;
using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace EfReplicaInterceptor.Clusters;

/// <summary>
/// The clusters of the tenants in use, created on first use (from <c>EfReplica:Tenants</c>, else from the application's
/// <see cref="IEfReplicaTenantCatalog"/>), shared by every DbContext lease of the tenant, and closed once no lease has held
/// one for <see cref="EfReplicaTenantOptions.IdleTimeout"/>. A cluster held by a lease is never closed.
/// </summary>
/// <remarks>
/// Tenant ids are compared ignoring case. An id that is neither configured nor known to the catalogue leaves nothing behind,
/// so ids taken from requests cannot fill the cache. Tenant clusters publish their instruments on a meter of their own,
/// disposed with them, so that a closed tenant leaves no instruments behind.
/// </remarks>
internal sealed class TenantClusterCache : IAsyncDisposable, IDisposable
{
    private static readonly TimeSpan MinimumSweepPeriod = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan MaximumSweepPeriod = TimeSpan.FromSeconds(30);

    private readonly ConcurrentDictionary<string, TenantClusterEntry> _entries = new(StringComparer.OrdinalIgnoreCase);
    private readonly TenantDatabases _databases;
    private readonly Lock _closingGate = new();
    private readonly List<Task> _closing = [];
    private readonly ClusterSet _settings;
    private readonly IEfReplicaTenantCatalog? _catalog;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly Action<NpgsqlDataSourceBuilder>? _configureDataSource;
    private readonly TimeProvider _timeProvider;
    private readonly TimeSpan _idleTimeout;
    private readonly ITimer _sweepTimer;
    private int _sweeping;
    private int _disposed;
    private long _created;
    private long _closed;

    public TenantClusterCache(
        ClusterSet settings,
        IEfReplicaTenantCatalog? catalog,
        ILoggerFactory? loggerFactory,
        Action<NpgsqlDataSourceBuilder>? configureDataSource,
        TimeProvider timeProvider)
    {
        _settings = settings;
        _catalog = catalog;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger(Log.ClustersCategory);
        _configureDataSource = configureDataSource;
        _timeProvider = timeProvider;
        _idleTimeout = settings.Tenancy.IdleTimeout;

        _databases = new TenantDatabases(settings, _logger);
        var period = TimeSpan.FromTicks(Math.Clamp(_idleTimeout.Ticks / 4, MinimumSweepPeriod.Ticks, MaximumSweepPeriod.Ticks));
        _sweepTimer = timeProvider.CreateTimer(static state => ((TenantClusterCache)state!).Sweep(), this, period, period);
    }

    /// <summary>Tenant clusters created so far (recreations after closing included).</summary>
    public long Created => Interlocked.Read(ref _created);

    /// <summary>Tenant clusters closed so far.</summary>
    public long Closed => Interlocked.Read(ref _closed);

    /// <summary>Whether <paramref name="tenantId"/>'s cluster is open.</summary>
    public bool IsOpen(string tenantId) => _entries.TryGetValue(tenantId, out var entry) && entry.IsCreated && !entry.IsRemoved;

    /// <summary>How many leases hold <paramref name="tenantId"/>'s cluster (0 when it is not open).</summary>
    public int LeasesOf(string tenantId)
    {
        if (!_entries.TryGetValue(tenantId, out var entry))
        {
            return 0;
        }

        lock (entry.Gate)
        {
            return entry.Leases;
        }
    }

    /// <summary>
    /// The cluster of <paramref name="tenantId"/>, created if needed, held for one lease until <see cref="Release"/>.
    /// </summary>
    /// <exception cref="EfReplicaTenantException">No tenant id, an unknown tenant, or a tenant on another tenant's database.</exception>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException">The tenant's settings are invalid.</exception>
    public TenantClusterEntry Acquire(string? tenantId)
    {
        if (string.IsNullOrWhiteSpace(tenantId))
        {
            Log.TenantRejected(_logger, string.Empty, "no tenant was resolved");
            throw EfReplicaTenantException.NotResolved();
        }

        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        while (true)
        {
            var entry = _entries.GetOrAdd(tenantId, static (id, cache) => new TenantClusterEntry(cache, id), this);
            lock (entry.Gate)
            {
                if (entry.IsRemoved)
                {
                    continue; // closed meanwhile: its replacement is created on the next turn
                }

                if (!entry.IsCreated)
                {
                    ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
                    try
                    {
                        Create(entry, tenantId);
                    }
                    catch
                    {
                        entry.IsRemoved = true;
                        _entries.TryRemove(new KeyValuePair<string, TenantClusterEntry>(tenantId, entry));
                        throw;
                    }
                }

                entry.Leases++;
                entry.LastUsed = _timeProvider.GetTimestamp();
                return entry;
            }
        }
    }

    /// <summary>Records the lease bound to a cluster acquired for it.</summary>
    public void Track(TenantLease lease)
    {
        var entry = lease.Entry;
        lock (entry.Gate)
        {
            if (!lease.IsReleased)
            {
                entry.Bound.Add(lease);
            }
        }
    }

    /// <summary>Lets go of a cluster acquired for a lease that ended (or was never bound: <paramref name="lease"/> null).</summary>
    public void Release(TenantClusterEntry entry, TenantLease? lease)
    {
        lock (entry.Gate)
        {
            entry.Leases--;
            if (lease is not null)
            {
                entry.Bound.Remove(lease);
            }

            entry.LastUsed = _timeProvider.GetTimestamp();
        }
    }

    /// <summary>
    /// Ends the leases whose context was garbage collected without ending them (discarded by a full pool, or never
    /// disposed), then closes the clusters that no lease has held for the idle timeout. Runs on a timer; callable from tests.
    /// </summary>
    internal void Sweep()
    {
        if (Volatile.Read(ref _disposed) != 0 || Interlocked.Exchange(ref _sweeping, 1) != 0)
        {
            return;
        }

        try
        {
            var now = _timeProvider.GetTimestamp();
            List<TenantLease>? abandoned = null;
            foreach (var pair in _entries)
            {
                var entry = pair.Value;
                TimeSpan idle;
                lock (entry.Gate)
                {
                    if (entry.IsRemoved || !entry.IsCreated)
                    {
                        continue;
                    }

                    if (entry.Leases > 0)
                    {
                        foreach (var lease in entry.Bound)
                        {
                            if (lease.IsAbandoned)
                            {
                                (abandoned ??= []).Add(lease);
                            }
                        }

                        continue;
                    }

                    idle = _timeProvider.GetElapsedTime(entry.LastUsed, now);
                    if (idle < _idleTimeout)
                    {
                        continue;
                    }

                    entry.IsRemoved = true;
                    _entries.TryRemove(pair);
                }

                Log.TenantClusterEvicted(_logger, entry.TenantId, idle.TotalSeconds);
                Close(entry);
            }

            // Their clusters become idle from now: closed by a later sweep once the timeout has passed.
            foreach (var lease in abandoned ?? [])
            {
                lease.Release();
            }
        }
        finally
        {
            Volatile.Write(ref _sweeping, 0);
        }
    }

    /// <summary>Waits until every cluster closed so far is disposed (its connections closed).</summary>
    internal Task WhenClosedAsync()
    {
        lock (_closingGate)
        {
            return Task.WhenAll(_closing);
        }
    }

    /// <summary>Closes every tenant cluster, leased or not: the application is stopping.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _sweepTimer.DisposeAsync().ConfigureAwait(false);
        foreach (var pair in _entries)
        {
            var entry = pair.Value;
            lock (entry.Gate)
            {
                if (entry.IsRemoved || !entry.IsCreated)
                {
                    continue;
                }

                entry.IsRemoved = true;
                _entries.TryRemove(pair);
            }

            Close(entry);
        }

        await WhenClosedAsync().ConfigureAwait(false);
    }

    /// <inheritdoc cref="DisposeAsync"/>
    public void Dispose()
    {
        // A container disposed synchronously: the clusters' monitors stop asynchronously, so this is where a sync caller blocks.
        DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    private void Create(TenantClusterEntry entry, string tenantId)
    {
        EfReplicaOptions options;
        string name;
        string path;
        string source;
        if (_settings.Clusters.TryGetValue(tenantId, out var configured))
        {
            (name, path, options) = (configured.Name, configured.Path, configured.Options);
            source = $"configuration ({path})";
        }
        else
        {
            options = _settings.SharedDefaults();
            if (_catalog is null || !_catalog.TryConfigureTenant(tenantId, options))
            {
                Log.TenantRejected(_logger, tenantId, "the tenant is unknown");
                throw EfReplicaTenantException.Unknown(tenantId, ClusterConfiguration.Child(_settings.ListPath, tenantId));
            }

            (name, path) = (tenantId, $"{nameof(IEfReplicaTenantCatalog)}[{tenantId}]");
            source = "the tenant catalogue";
        }

        var database = ClusterConfiguration.DatabaseKey(options.Primary);
        _databases.Claim(name, database);
        EfReplicaCluster? cluster = null;
        try
        {
            cluster = EfReplicaCluster.Create(name, options, path, _loggerFactory, _configureDataSource, meterFactory: null, _timeProvider);
            entry.SetCluster(name, cluster, database);
        }
        catch
        {
            cluster?.Dispose();
            _databases.Release(name, database);
            throw;
        }

        Interlocked.Increment(ref _created);
        Log.TenantClusterCreated(_logger, name, source);
    }

    private void Close(TenantClusterEntry entry)
    {
        _databases.Release(entry.TenantId, entry.DatabaseKey);
        Interlocked.Increment(ref _closed);
        var closing = CloseAsync(entry);
        lock (_closingGate)
        {
            _closing.RemoveAll(static task => task.IsCompleted);
            _closing.Add(closing);
        }
    }

    private async Task CloseAsync(TenantClusterEntry entry)
    {
        try
        {
            await entry.Cluster.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception exception)
        {
            Log.TenantClusterDisposeFailed(_logger, exception, entry.TenantId);
        }
    }
}
