using EfReplicaInterceptor.Configuration;
using EfReplicaInterceptor.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using Npgsql;

namespace EfReplicaInterceptor.Topology;

/// <summary>
/// The replicas listed in configuration (<see cref="EfReplicaOptions.Replicas"/>), read again whenever the configuration
/// changes (a JSON file with <c>reloadOnChange</c>): a replica added, removed, re-pointed or re-weighted takes effect without
/// a restart. A change that does not pass the start-up checks is refused as a whole (event
/// <see cref="EfReplicaEventId.TopologyChangeRefused"/> with the start-up messages) and the running topology stays. Only the
/// replica list and the weights apply live; a change to any other setting is reported
/// (<see cref="EfReplicaEventId.SettingNeedsRestart"/>, naming the settings) and applies at the next start.
/// </summary>
internal sealed class StaticTopologySource : ITopologySource
{
    private readonly string _cluster;
    private readonly LiveConfiguration? _live;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly IReadOnlyDictionary<string, string?> _startupSettings;
    private IDisposable? _subscription;
    private Action<TopologySnapshot>? _publish;
    private string _reportedRestart = string.Empty;
    private string _reportedRefusal = string.Empty;
    private bool _disposed;

    /// <param name="cluster">The cluster's name, for logs.</param>
    /// <param name="options">The settings the cluster started with.</param>
    /// <param name="live">How to read the configuration again when it changes; null for settings given in code (fixed).</param>
    /// <param name="loggerFactory">Where events go.</param>
    public StaticTopologySource(string cluster, EfReplicaOptions options, LiveConfiguration? live, ILoggerFactory loggerFactory)
    {
        _cluster = cluster;
        _live = live;
        _logger = loggerFactory.CreateLogger(Log.TopologyCategory);
        Initial = SnapshotOf(options);
        _startupSettings = live?.Read().StartupSettings ?? new Dictionary<string, string?>();
    }

    public string Kind => "configuration";

    public TopologySnapshot? Initial { get; }

    /// <summary>The members configured in <paramref name="options"/>: every replica, in order, with its weight.</summary>
    public static TopologySnapshot SnapshotOf(EfReplicaOptions options)
    {
        var replicas = options.Replicas ?? [];
        var members = new List<TopologyMember>(replicas.Count);
        for (var i = 0; i < replicas.Count; i++)
        {
            var replica = replicas[i];
            var name = EfReplicaOptionsValidator.ReplicaName(replica, new NpgsqlConnectionStringBuilder(replica.ConnectionString), i);
            members.Add(new TopologyMember(name, replica.ConnectionString!, MemberRole.Replica, TakesReads: true, replica.Weight));
        }

        return new TopologySnapshot(members, "configuration");
    }

    public void Start(Action<TopologySnapshot> publish)
    {
        lock (_gate)
        {
            if (_publish is not null || _live is null || _disposed)
            {
                return;
            }

            _publish = publish;
            _subscription = ChangeToken.OnChange(_live.Changes, Reload);
        }
    }

    /// <summary>Nothing to look at: configuration reports its changes itself.</summary>
    public Task RefreshAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void RequestRefresh()
    {
    }

    /// <summary>Reads the configuration again and publishes its replicas, or refuses the change. Called on every change.</summary>
    internal void Reload()
    {
        lock (_gate)
        {
            if (_disposed || _publish is null || _live is null)
            {
                return;
            }

            SettingsRead read;
            try
            {
                read = _live.Read();
            }
            catch (Exception exception)
            {
                // A file caught half-written, say; the next change reads it again.
                read = new SettingsRead(null, [$"the configuration could not be read ({exception.GetType().Name})"], _startupSettings);
            }

            if (read.Failures.Count > 0 || read.Options is null)
            {
                var problems = string.Join(" ", read.Failures);
                if (problems != _reportedRefusal)
                {
                    Log.TopologyChangeRefused(_logger, _cluster, problems);
                    _reportedRefusal = problems;
                }

                return;
            }

            _reportedRefusal = string.Empty;
            ReportRestartSettings(read.StartupSettings);
            try
            {
                _publish(SnapshotOf(read.Options) with { Source = "configuration, changed" });
            }
            catch (Exception exception)
            {
                // Never out of the configuration's change callback (it runs on the file watcher's thread, and would stop
                // the next change from being seen); the running topology stays.
                Log.TopologySourceFailed(_logger, _cluster, "configuration", $"the change could not be applied ({exception.GetType().Name})");
            }
        }
    }

    private void ReportRestartSettings(IReadOnlyDictionary<string, string?> now)
    {
        var changed = now.Keys.Union(_startupSettings.Keys, StringComparer.OrdinalIgnoreCase)
            .Where(key => !(now.TryGetValue(key, out var value) && _startupSettings.TryGetValue(key, out var before) && string.Equals(value, before, StringComparison.Ordinal)))
            .Order(StringComparer.OrdinalIgnoreCase)
            .ToList();
        var settings = string.Join(", ", changed);
        if (settings != _reportedRestart && changed.Count > 0)
        {
            Log.SettingNeedsRestart(_logger, _cluster, settings);
        }

        _reportedRestart = settings;
    }

    public ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            _disposed = true;
            _subscription?.Dispose();
            _subscription = null;
        }

        return ValueTask.CompletedTask;
    }
}
