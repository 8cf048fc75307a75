using System.Runtime.CompilerServices;
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
/// Every server has a loop of its own (<see cref="ProbeChannel"/>), and every probe ends within
/// <c>HealthCheckTimeout</c> whatever the server does (its connection is broken at the deadline): a hung server delays the
/// verdict on no other, so lag budgets keep being measured while another server hangs. Each answer is also the server's
/// sign of life (<see cref="ServerLiveness"/>) that tells the read deadline a hung server from a slow query. The monitor does the I/O and the measuring only: it opens, probes and drops connections, computes each replica's
/// <see cref="ReplicaHealth"/> (lag from <see cref="PrimaryWalHistory"/>), and logs what
/// <see cref="ReplicaAvailability.ReportProbe"/> says changed. Admission, hysteresis and the backoff between probes of an
/// unreachable replica are <see cref="ReplicaAvailability"/>'s.
/// </remarks>
internal sealed partial class ClusterMonitor : IAsyncDisposable
{
    private readonly string _cluster;
    private readonly ProbeChannel _primary;
    private readonly ReplicaEndpoint[] _replicas;
    private readonly ProbeChannel[] _channels;
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
    private Task[]? _loops;

    // Set once the primary has been probed (answered or not): a replica's lag is measured against the primary's samples,
    // so the replicas' loops start after it rather than report "lag unknown" at start-up.
    private readonly TaskCompletionSource _primarySampled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile string? _primaryProblem = "not probed yet";
    private volatile string? _splitBrainProblem;
    private volatile int _writableServers;

    public ClusterMonitor(
        string cluster,
        WatchedServer primary,
        ReplicaEndpoint[] replicas,
        EfReplicaOptions options,
        PrimaryPosition position,
        TimeProvider timeProvider,
        ILoggerFactory loggerFactory)
    {
        _cluster = cluster;
        _position = position;
        _primary = new ProbeChannel(primary);
        _replicas = replicas;
        _channels = Array.ConvertAll(replicas, static replica => new ProbeChannel(replica.Server));
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

    /// <summary>Completed probe rounds: the turns of the server whose loop has made the fewest.</summary>
    public long Rounds => Math.Min(_primary.Turns, _channels.Length == 0 ? long.MaxValue : _channels.Min(static channel => channel.Turns));

    public void Start() => _loops ??=
    [
        Task.Run(() => LoopAsync(_primary, PrimaryTurnAsync)),
        .. _channels.Select((channel, index) => Task.Run(async () =>
        {
            await _primarySampled.Task.WaitAsync(_stopping.Token).ConfigureAwait(false);
            await LoopAsync(channel, token => ReplicaTurnAsync(index, force: false, token)).ConfigureAwait(false);
        })),
    ];

    /// <summary>
    /// Probes every server now (waiting for a probe of it in progress first), each within its deadline: the primary first,
    /// so that the replicas' lag is measured against a fresh sample, then every replica at once, then split-brain detection.
    /// </summary>
    public async Task ProbeNowAsync(CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        await _round.WaitAsync(linked.Token).ConfigureAwait(false);
        try
        {
            await ProbePrimaryAsync(linked.Token).ConfigureAwait(false);
            _primarySampled.TrySetResult();
            var probes = new Task[_replicas.Length];
            for (var i = 0; i < _replicas.Length; i++)
            {
                probes[i] = ReplicaTurnAsync(i, force: true, linked.Token);
            }

            await Task.WhenAll(probes).ConfigureAwait(false);
            await DetectSplitBrainAsync(linked.Token).ConfigureAwait(false);
            TrimHistory();
        }
        finally
        {
            _round.Release();
        }

        _primary.CountTurn();
        foreach (var channel in _channels)
        {
            channel.CountTurn();
        }
    }

    /// <summary>One server's loop: a turn, then the interval; a failed turn is logged and the loop goes on.</summary>
    private async Task LoopAsync(ProbeChannel channel, Func<CancellationToken, Task> turn)
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            try
            {
                await turn(token).ConfigureAwait(false);
                channel.CountTurn();
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

    /// <summary>The primary's turn: its probe, then split-brain detection and trimming the WAL history.</summary>
    private async Task PrimaryTurnAsync(CancellationToken cancellationToken)
    {
        await _round.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await ProbePrimaryAsync(cancellationToken).ConfigureAwait(false);
            _primarySampled.TrySetResult();
            await DetectSplitBrainAsync(cancellationToken).ConfigureAwait(false);
            TrimHistory();
        }
        finally
        {
            _round.Release();
        }
    }

    /// <summary>A replica's turn: its probe, when its backoff allows (or <paramref name="force"/>).</summary>
    private Task ReplicaTurnAsync(int index, bool force, CancellationToken cancellationToken)
        => _replicas[index].Availability.TryStartProbe(force) ? ProbeReplicaAsync(index, cancellationToken) : Task.CompletedTask;

    private void TrimHistory()
    {
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
    }

    private async Task ProbePrimaryAsync(CancellationToken cancellationToken)
    {
        try
        {
            var sample = await _primary.ProbeAsync(static connection => ServerQueries.ProbePrimaryAsync(connection, CancellationToken.None), cancellationToken).ConfigureAwait(false);
            _primaryServer = sample.InRecovery ? null : sample.Server;
            _primaryAnswer = sample.InRecovery ? null : new StrongBox<ServerIdentity>(sample.Server);
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
            _primaryServer = null;
            _primaryAnswer = null;
            SetPrimaryProblem(Describe(exception), unanswered: true);
            PrimaryUnanswered();
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

    private void SetPrimaryProblem(string? problem, bool unanswered = false)
    {
        _history.PrimaryUnanswered |= unanswered; // cleared by the next sample
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
        ReplicaHealth health;
        try
        {
            var sentAt = _timeProvider.GetTimestamp(); // before the query (and any connect): the sample bounds every read served until then
            var sample = await _channels[index].ProbeAsync(static connection => ServerQueries.ProbeReplicaAsync(connection, CancellationToken.None), cancellationToken).ConfigureAwait(false);
            var (inRecovery, replay, streaming) = (sample.InRecovery, sample.ReplayLsn, sample.Streaming);
            _writableReplicas[index] = inRecovery ? null : sample.Server; // out of rotation too: not a standby
            replica.WritableServer = inRecovery ? null : sample.Server;
            health = _meter.Measure(inRecovery, replay, streaming);
            if (inRecovery)
            {
                replica.ObserveReplay(replay, sample.Server.StartedAtTicks, sentAt);
            }
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            _writableReplicas[index] = null;
            replica.WritableServer = null;
            health = new ReplicaHealth
            {
                Reachable = false,
                MeasuredAt = _timeProvider.GetTimestamp(),
                Problem = $"unreachable: {Describe(exception)}",
            };
        }

        replica.Health = health;
        var wasAdmitted = replica.Availability.IsAdmittedByMonitor; // only this monitor's probes change it
        Announce(replica, replica.Availability.ReportProbe(health, _maxLag, _maxLagBytes), health, wasAdmitted);
    }

    private static string Describe(Exception exception)
        => exception is ServerDeadlineException ? "the probe timed out" : FailoverErrors.Classify(exception, FailurePhase.Opening, onStandby: false) switch
        {
            ServerErrorKind.None => exception is PostgresException postgres ? $"error {postgres.SqlState}" : exception.GetType().Name,
            var kind => FailoverErrors.GetName(kind),
        };

    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_loops is not null)
        {
            try
            {
                await Task.WhenAll(_loops).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }

        await _round.WaitAsync().ConfigureAwait(false);
        await _primary.DisposeAsync().ConfigureAwait(false);
        foreach (var channel in _channels)
        {
            await channel.DisposeAsync().ConfigureAwait(false);
        }

        await _splitBrain.DisposeAsync().ConfigureAwait(false);
        _round.Dispose();
        _stopping.Dispose();
    }
}
