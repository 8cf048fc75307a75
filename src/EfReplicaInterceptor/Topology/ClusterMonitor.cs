using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Failover;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EfReplicaInterceptor.Topology;

/// <summary>
/// Watches the primary and every replica of one cluster in the background: one small query per server per interval,
/// on a connection it keeps open. Commands never wait for it; they read the verdicts it hands to each replica's
/// <see cref="ReplicaAvailability"/>.
/// </summary>
/// <remarks>
/// The monitor does the I/O and the measuring only: it opens, probes and drops connections, computes each replica's
/// <see cref="ReplicaHealth"/> (lag from <see cref="PrimaryWalHistory"/>), and logs what
/// <see cref="ReplicaAvailability.ReportProbe"/> says changed. Admission, hysteresis and the backoff between probes of an
/// unreachable replica are <see cref="ReplicaAvailability"/>'s.
/// </remarks>
internal sealed class ClusterMonitor : IAsyncDisposable
{
    private readonly string _cluster;
    private readonly NpgsqlDataSource _primary;
    private readonly ReplicaEndpoint[] _replicas;
    private readonly NpgsqlConnection?[] _connections;
    private readonly TimeSpan _interval;
    private readonly TimeSpan _timeout;
    private readonly TimeSpan _maxLag;
    private readonly long? _maxLagBytes;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly PrimaryWalHistory _history = new();
    private readonly ReplicaHealthMeter _meter;
    private readonly PrimaryPosition _position;
    private readonly SemaphoreSlim _round = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly SplitBrainDetector _splitBrain;
    private readonly ServerIdentity?[] _writableReplicas; // a replica's identity while it answers as writable
    private ServerIdentity? _primaryServer;
    private NpgsqlConnection? _primaryConnection;
    private Task? _loop;
    private volatile string? _primaryProblem = "not probed yet";
    private volatile string? _splitBrainProblem;
    private volatile int _writableServers;
    private long _rounds;

    public ClusterMonitor(
        string cluster,
        NpgsqlDataSource primary,
        ReplicaEndpoint[] replicas,
        EfReplicaOptions options,
        PrimaryPosition position,
        TimeProvider timeProvider,
        ILoggerFactory loggerFactory)
    {
        _cluster = cluster;
        _position = position;
        _primary = primary;
        _replicas = replicas;
        _connections = new NpgsqlConnection?[replicas.Length];
        _writableReplicas = new ServerIdentity?[replicas.Length];
        _splitBrain = new SplitBrainDetector(options.Primary);
        _interval = options.HealthCheckInterval;
        _timeout = options.HealthCheckTimeout;
        _maxLag = options.MaxReplicaLag;
        _maxLagBytes = options.MaxReplicaLagBytes;
        _meter = new ReplicaHealthMeter(_history, _maxLag, _maxLagBytes, timeProvider);
        _timeProvider = timeProvider;
        _logger = loggerFactory.CreateLogger(Log.TopologyCategory);
    }

    /// <summary>Null while the primary answers as a primary; otherwise why not.</summary>
    public string? PrimaryProblem => _primaryProblem;

    /// <summary>Null while at most one server of the cluster accepts writes; otherwise which servers do (split brain).</summary>
    public string? SplitBrain => _splitBrainProblem;

    /// <summary>How many distinct servers of the cluster accepted writes in the last round (1 is normal).</summary>
    public int WritableServers => _writableServers;

    /// <summary>Completed probe rounds.</summary>
    public long Rounds => Interlocked.Read(ref _rounds);

    public void Start() => _loop ??= Task.Run(LoopAsync);

    /// <summary>Runs one probe round now (waiting for one in progress to finish first).</summary>
    public async Task ProbeNowAsync(CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        await _round.WaitAsync(linked.Token).ConfigureAwait(false);
        try
        {
            await RoundAsync(force: true, linked.Token).ConfigureAwait(false);
        }
        finally
        {
            _round.Release();
        }
    }

    private async Task LoopAsync()
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            try
            {
                await _round.WaitAsync(token).ConfigureAwait(false);
                try
                {
                    await RoundAsync(force: false, token).ConfigureAwait(false);
                }
                finally
                {
                    _round.Release();
                }

                await Task.Delay(_interval, _timeProvider, token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (Exception exception)
            {
                Log.MonitorRoundFailed(_logger, exception, _cluster);
                try
                {
                    await Task.Delay(_interval, _timeProvider, token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private async Task RoundAsync(bool force, CancellationToken cancellationToken)
    {
        await ProbePrimaryAsync(cancellationToken).ConfigureAwait(false);

        var probes = new List<Task>(_replicas.Length);
        for (var i = 0; i < _replicas.Length; i++)
        {
            if (_replicas[i].Availability.TryStartProbe(force))
            {
                probes.Add(ProbeReplicaAsync(i, cancellationToken));
            }
        }

        await Task.WhenAll(probes).ConfigureAwait(false);
        await DetectSplitBrainAsync(cancellationToken).ConfigureAwait(false);

        ulong? minimumReplay = null;
        foreach (var replica in _replicas)
        {
            if (replica.Health is { Reachable: true, InRecovery: true } health)
            {
                minimumReplay = minimumReplay is null ? health.ReplayLsn : Math.Min(minimumReplay.Value, health.ReplayLsn);
            }
        }

        if (minimumReplay is { } replay)
        {
            _history.Trim(replay);
        }

        Interlocked.Increment(ref _rounds);
    }

    private async Task ProbePrimaryAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);
        try
        {
            _primaryConnection ??= await _primary.OpenConnectionAsync(timeout.Token).ConfigureAwait(false);
            var sample = await ServerQueries.ProbePrimaryAsync(_primaryConnection, timeout.Token).ConfigureAwait(false);
            _primaryServer = sample.InRecovery ? null : sample.Server;
            if (sample.InRecovery)
            {
                SetPrimaryProblem("the configured primary is in recovery (a standby)");
                return;
            }

            var sampledAt = _timeProvider.GetTimestamp();
            _history.Add(sampledAt, sample.Lsn);
            _position.Record(sampledAt, sample.Lsn, sample.SystemIdentifier);
            SetPrimaryProblem(null);
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            await DropAsync(_primaryConnection).ConfigureAwait(false);
            _primaryConnection = null;
            _primaryServer = null;
            SetPrimaryProblem(Describe(exception, timeout.IsCancellationRequested));
        }
    }

    private async Task DetectSplitBrainAsync(CancellationToken cancellationToken)
    {
        var (writable, problem) = await _splitBrain.FindAsync(_primaryServer, _replicas, _writableReplicas, _timeout, cancellationToken).ConfigureAwait(false);
        _writableServers = writable;
        var previous = _splitBrainProblem;
        _splitBrainProblem = problem;
        if (problem is not null && problem != previous)
        {
            Log.SplitBrainDetected(_logger, _cluster, problem);
        }
        else if (problem is null && previous is not null)
        {
            Log.SplitBrainResolved(_logger, _cluster);
        }
    }

    private void SetPrimaryProblem(string? problem)
    {
        var previous = _primaryProblem;
        _primaryProblem = problem;
        if (problem is not null && previous is null)
        {
            Log.PrimaryUnhealthy(_logger, _cluster, problem);
        }
        else if (problem is null && previous is not null && Rounds > 0)
        {
            Log.PrimaryHealthy(_logger, _cluster);
        }
    }

    private async Task ProbeReplicaAsync(int index, CancellationToken cancellationToken)
    {
        var replica = _replicas[index];
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);
        ReplicaHealth health;
        try
        {
            _connections[index] ??= await replica.DataSource.OpenConnectionAsync(timeout.Token).ConfigureAwait(false);
            var sentAt = _timeProvider.GetTimestamp(); // before the query: the sample bounds every read served until then
            var sample = await ServerQueries.ProbeReplicaAsync(_connections[index]!, timeout.Token).ConfigureAwait(false);
            var (inRecovery, replay, streaming) = (sample.InRecovery, sample.ReplayLsn, sample.Streaming);
            _writableReplicas[index] = inRecovery ? null : sample.Server; // out of rotation too: not a standby
            health = _meter.Measure(inRecovery, replay, streaming);
            if (inRecovery)
            {
                replica.ObserveReplay(replay, sample.Server.StartedAtTicks, sentAt);
            }
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            await DropAsync(_connections[index]).ConfigureAwait(false);
            _connections[index] = null;
            _writableReplicas[index] = null;
            health = new ReplicaHealth
            {
                Reachable = false,
                MeasuredAt = _timeProvider.GetTimestamp(),
                Problem = $"unreachable: {Describe(exception, timeout.IsCancellationRequested)}",
            };
        }

        replica.Health = health;
        var wasAdmitted = replica.Availability.IsAdmittedByMonitor; // only this monitor's probes change it
        Announce(replica, replica.Availability.ReportProbe(health, _maxLag, _maxLagBytes), health, wasAdmitted);
    }

    private void Announce(ReplicaEndpoint replica, AvailabilityChange change, ReplicaHealth health, bool wasAdmitted)
    {
        switch (change)
        {
            case AvailabilityChange.Left:
                Log.ReplicaLeftRotation(_logger, replica.Name, _cluster, health.Problem!);
                break;
            case AvailabilityChange.KeptOut:
                Log.ReplicaKeptOut(_logger, replica.Name, _cluster, health.Problem!);
                break;
            case AvailabilityChange.Rejoined when wasAdmitted:
                // The pause after failed reads ended: the monitor found the replica healthy.
                Log.ReplicaRejoinedRotation(_logger, replica.Name, _cluster, $"a health probe found it healthy again (lag {health.Lag!.Value.TotalSeconds:0.###} s)");
                break;
            case AvailabilityChange.Rejoined:
                Log.ReplicaRejoinedRotation(_logger, replica.Name, _cluster, $"lag {health.Lag!.Value.TotalSeconds:0.###} s, {health.LagBytes} bytes");
                break;
            case AvailabilityChange.Admitted:
                Log.ReplicaAdmitted(_logger, replica.Name, _cluster, health.Lag!.Value.TotalSeconds);
                break;
        }
    }

    private static string Describe(Exception exception, bool timedOut)
        => timedOut ? "the probe timed out" : FailoverErrors.Classify(exception, FailurePhase.Opening, onStandby: false) switch
        {
            ServerErrorKind.None => exception is PostgresException postgres ? $"error {postgres.SqlState}" : exception.GetType().Name,
            var kind => FailoverErrors.GetName(kind),
        };

    private static async ValueTask DropAsync(NpgsqlConnection? connection)
    {
        if (connection is null)
        {
            return;
        }

        try
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
            // A broken connection may fail to close cleanly; it is gone either way.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            try
            {
                await _loop.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }

        await _round.WaitAsync().ConfigureAwait(false);
        await DropAsync(_primaryConnection).ConfigureAwait(false);
        foreach (var connection in _connections)
        {
            await DropAsync(connection).ConfigureAwait(false);
        }

        await _splitBrain.DisposeAsync().ConfigureAwait(false);
        _round.Dispose();
        _stopping.Dispose();
    }
}
