using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Failover;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EfReplicaInterceptor.Topology;

/// <summary>
/// Watches the primary and every replica of one cluster in the background: one small query per server per interval,
/// on a connection it keeps open. Commands never wait for it; they read the verdicts it leaves on each
/// <see cref="ReplicaEndpoint"/>.
/// </summary>
/// <remarks>
/// A replica is in rotation when it answers, is a standby (<c>pg_is_in_recovery()</c>), and its lag (time and, when set,
/// bytes) is within budget. It leaves at once when one of those stops being true. After having been in rotation, it comes
/// back only when its lag is under half the budget on two probes in a row (hysteresis). An unreachable replica is probed
/// again after 1, 2, 4, then every 8 intervals, and re-admitted as soon as it answers well.
/// </remarks>
internal sealed class ClusterMonitor : IAsyncDisposable
{
    private const int MaxBackoffExponent = 3;

    private readonly string _cluster;
    private readonly NpgsqlDataSource _primary;
    private readonly ReplicaEndpoint[] _replicas;
    private readonly ProbeState[] _states;
    private readonly TimeSpan _interval;
    private readonly TimeSpan _timeout;
    private readonly TimeSpan _maxLag;
    private readonly long? _maxLagBytes;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly PrimaryWalHistory _history = new();
    private readonly PrimaryPosition _position;
    private readonly SemaphoreSlim _round = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private NpgsqlConnection? _primaryConnection;
    private Task? _loop;
    private volatile string? _primaryProblem = "not probed yet";
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
        _states = Array.ConvertAll(replicas, _ => new ProbeState());
        _interval = options.HealthCheckInterval;
        _timeout = options.HealthCheckTimeout;
        _maxLag = options.MaxReplicaLag;
        _maxLagBytes = options.MaxReplicaLagBytes;
        _timeProvider = timeProvider;
        _logger = loggerFactory.CreateLogger(Log.TopologyCategory);
    }

    /// <summary>Null while the primary answers as a primary; otherwise why not.</summary>
    public string? PrimaryProblem => _primaryProblem;

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

        var now = _timeProvider.GetTimestamp();
        var probes = new List<Task>(_replicas.Length);
        for (var i = 0; i < _replicas.Length; i++)
        {
            var state = _states[i];
            if (force || _replicas[i].ProbeRequested || now >= state.NextProbeAt)
            {
                _replicas[i].ProbeRequested = false;
                probes.Add(ProbeReplicaAsync(i, cancellationToken));
            }
        }

        await Task.WhenAll(probes).ConfigureAwait(false);

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
            SetPrimaryProblem(Describe(exception, timeout.IsCancellationRequested));
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
        var state = _states[index];
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);
        ReplicaHealth health;
        try
        {
            state.Connection ??= await replica.DataSource.OpenConnectionAsync(timeout.Token).ConfigureAwait(false);
            var sample = await ServerQueries.ProbeReplicaAsync(state.Connection, timeout.Token).ConfigureAwait(false);
            var (inRecovery, replay, streaming) = (sample.InRecovery, sample.ReplayLsn, sample.Streaming);
            health = Measure(inRecovery, replay, streaming);
            if (inRecovery)
            {
                replica.ObserveReplay(replay);
            }

            state.Failures = 0;
            state.NextProbeAt = 0;
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            await DropAsync(state.Connection).ConfigureAwait(false);
            state.Connection = null;
            state.Failures++;
            var exponent = Math.Min(state.Failures - 1, MaxBackoffExponent);
            state.NextProbeAt = _timeProvider.GetTimestamp() + (long)(_interval.TotalSeconds * _timeProvider.TimestampFrequency * (1 << exponent));
            health = new ReplicaHealth
            {
                Reachable = false,
                MeasuredAt = _timeProvider.GetTimestamp(),
                Problem = $"unreachable: {Describe(exception, timeout.IsCancellationRequested)}",
            };
        }

        replica.Health = health;
        Decide(replica, state, health);
    }

    private ReplicaHealth Measure(bool inRecovery, ulong replay, bool streaming)
    {
        var now = _timeProvider.GetTimestamp();
        if (!inRecovery)
        {
            return new ReplicaHealth
            {
                Reachable = true,
                MeasuredAt = now,
                Problem = "not a standby: pg_is_in_recovery() is false (promoted, or the address of a primary)",
            };
        }

        TimeSpan? lag = null;
        long? lagBytes = null;
        if (_history.Latest is { } primaryLsn)
        {
            lagBytes = primaryLsn > replay ? (long)(primaryLsn - replay) : 0;
            lag = _history.FirstUnreplayed(replay) is { } since ? _timeProvider.GetElapsedTime(since, now) : TimeSpan.Zero;
        }

        string? problem = null;
        if (lag is null)
        {
            problem = "lag unknown: the primary has not been sampled yet";
        }
        else if (lag > _maxLag)
        {
            problem = $"lag {lag.Value.TotalSeconds:0.###} s is over the budget of {_maxLag.TotalSeconds:0.###} s ({lagBytes} bytes behind)";
        }
        else if (_maxLagBytes is { } maxBytes && lagBytes > maxBytes)
        {
            problem = $"lag {lagBytes} bytes is over the budget of {maxBytes} bytes";
        }

        return new ReplicaHealth
        {
            Reachable = true,
            InRecovery = true,
            ReplayLsn = replay,
            Lag = lag,
            LagBytes = lagBytes,
            WalReceiverStreaming = streaming,
            MeasuredAt = now,
            IsLagging = problem is not null,
            Problem = problem,
        };
    }

    private void Decide(ReplicaEndpoint replica, ProbeState state, ReplicaHealth health)
    {
        if (health.Problem is not null)
        {
            state.GoodStreak = 0;
            if (replica.AdmittedByMonitor)
            {
                // A replica already paused by a failed read was announced then; say it once.
                var wasInRotation = replica.IsAdmitted;
                replica.AdmittedByMonitor = false;
                state.Reported = true;
                if (wasInRotation)
                {
                    Log.ReplicaLeftRotation(_logger, replica.Name, _cluster, health.Problem);
                }
            }
            else if (!state.Reported)
            {
                state.Reported = true;
                Log.ReplicaKeptOut(_logger, replica.Name, _cluster, health.Problem);
            }

            return;
        }

        if (replica.AdmittedByMonitor)
        {
            // A pause after failed reads ends as soon as the monitor finds the replica healthy.
            if (replica.ReportSuccess())
            {
                Log.ReplicaRejoinedRotation(_logger, replica.Name, _cluster, $"a health probe found it healthy again (lag {health.Lag!.Value.TotalSeconds:0.###} s)");
            }

            return;
        }

        state.GoodStreak++;
        var calm = health.Lag <= _maxLag / 2 && (_maxLagBytes is not { } maxBytes || health.LagBytes <= maxBytes / 2);
        if (state.EverAdmitted && !(calm && state.GoodStreak >= 2))
        {
            return; // hysteresis: a replica that left comes back only once it is clearly within budget
        }

        replica.ReportSuccess();
        replica.AdmittedByMonitor = true;
        var wasOut = state.Reported;
        state.EverAdmitted = true;
        state.Reported = true;
        if (wasOut)
        {
            Log.ReplicaRejoinedRotation(_logger, replica.Name, _cluster, $"lag {health.Lag!.Value.TotalSeconds:0.###} s, {health.LagBytes} bytes");
        }
        else
        {
            Log.ReplicaAdmitted(_logger, replica.Name, _cluster, health.Lag!.Value.TotalSeconds);
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
        foreach (var state in _states)
        {
            await DropAsync(state.Connection).ConfigureAwait(false);
        }

        _round.Dispose();
        _stopping.Dispose();
    }

    private sealed class ProbeState
    {
        public NpgsqlConnection? Connection { get; set; }

        public int Failures { get; set; }

        public long NextProbeAt { get; set; }

        public int GoodStreak { get; set; }

        public bool EverAdmitted { get; set; }

        public bool Reported { get; set; }
    }
}
