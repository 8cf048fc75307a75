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
/// <see cref="ReplicaHealth"/> (lag from <see cref="ClusterWalHistory"/>), and logs what
/// <see cref="ReplicaAvailability.ReportProbe"/> says changed. Admission, hysteresis and the backoff between probes of an
/// unreachable replica are <see cref="ReplicaAvailability"/>'s.
/// </remarks>
internal sealed partial class ClusterMonitor : IAsyncDisposable
{
    private readonly string _cluster;
    private readonly ProbeChannel _primary;
    private readonly Lock _membersGate = new();
    private volatile ReplicaProbe[] _members; // swapped whole under _membersGate: one loop per replica of the current set
    private readonly TimeSpan _interval;
    private readonly TimeSpan _timeout;
    private readonly TimeSpan _maxLag;
    private readonly long? _maxLagBytes;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly ClusterWalHistory _history = new();
    private readonly ReplicaHealthMeter _meter;
    private readonly PrimaryPosition _position;
    private readonly SemaphoreSlim _round = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly SplitBrainDetector _splitBrain;
    private ServerIdentity? _primaryServer;
    private ServerIdentity? _lastPrimary; // the last server that answered the primary's probe as a primary, kept through outages
    private readonly PrimaryTypeCatalog? _primaryTypes;
    private Task? _primaryLoop;

    // Set once the primary has been probed (answered or not): a replica's lag is measured against the primary's samples,
    // so the replicas' loops start after it rather than report "lag unknown" at start-up.
    private readonly TaskCompletionSource _primarySampled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile string? _primaryProblem = "not probed yet";
    private volatile string? _splitBrainProblem;
    private volatile int _writableServers;
    private int _disposed;

    /// <param name="cluster">The cluster's name, for logs.</param>
    /// <param name="primary">The primary.</param>
    /// <param name="replicas">The replicas to watch from the start; later ones come and go with <see cref="Add"/> and <see cref="RemoveAsync"/>.</param>
    /// <param name="options">The cluster's settings (interval, timeout, lag budgets).</param>
    /// <param name="position">Where the primary's latest position is recorded for read-your-writes.</param>
    /// <param name="splitBrain">The split-brain detector (built by the composition root; disposed with the monitor).</param>
    /// <param name="timeProvider">The clock.</param>
    /// <param name="loggerFactory">Where events go.</param>
    /// <param name="primaryTypes">Told when another server answers as the primary, so that its types are reloaded (none in unit tests).</param>
    public ClusterMonitor(
        string cluster,
        WatchedServer primary,
        IEnumerable<ReplicaEndpoint> replicas,
        EfReplicaOptions options,
        PrimaryPosition position,
        SplitBrainDetector splitBrain,
        TimeProvider timeProvider,
        ILoggerFactory loggerFactory,
        PrimaryTypeCatalog? primaryTypes = null)
    {
        _cluster = cluster;
        _primaryTypes = primaryTypes;
        _position = position;
        _primary = new ProbeChannel(primary);
        _members = [.. replicas.Select(static replica => new ReplicaProbe(replica, turns: 0))];
        _splitBrain = splitBrain;
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

    /// <summary>
    /// Probes every server now (waiting for a probe of it in progress first), each within its deadline: the primary first,
    /// so that the replicas' lag is measured against a fresh sample, then every replica at once, then split-brain detection.
    /// </summary>
    public async Task ProbeNowAsync(CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        ReplicaProbe[] members;
        await _round.WaitAsync(linked.Token).ConfigureAwait(false);
        try
        {
            await ProbePrimaryAsync(linked.Token).ConfigureAwait(false);
            _primarySampled.TrySetResult();
            members = _members;
            var probes = new Task[members.Length];
            for (var i = 0; i < members.Length; i++)
            {
                probes[i] = ReplicaTurnAsync(members[i], linked.Token);
            }

            await Task.WhenAll(probes).ConfigureAwait(false);
            await DetectSplitBrainAsync(linked.Token).ConfigureAwait(false);
            RecheckPrimaryHostsIfPromoted();
            TrimHistory();
        }
        finally
        {
            _round.Release();
        }

        _primary.CountTurn();
        foreach (var member in members)
        {
            member.Channel.CountTurn();
        }
    }

    /// <summary>One server's loop: a turn, then the interval; a failed turn is logged and the loop goes on.</summary>
    private async Task LoopAsync(ProbeChannel channel, Func<CancellationToken, Task> turn, CancellationToken token)
    {
        while (!token.IsCancellationRequested)
        {
            try
            {
                await turn(token).ConfigureAwait(false);
                channel.CountTurn();
                await (channel == _primary ? PausePrimaryAsync(token) : Task.Delay(_interval, _timeProvider, token)).ConfigureAwait(false);
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
            RecheckPrimaryHostsIfPromoted();
            TrimHistory();
        }
        finally
        {
            _round.Release();
        }
    }

    /// <summary>A replica's turn: its probe (every round, in or out of rotation), unless it left the topology.</summary>
    private Task ReplicaTurnAsync(ReplicaProbe member, CancellationToken cancellationToken)
    {
        if (member.Replica.IsRetired)
        {
            return Task.CompletedTask;
        }

        member.Replica.Availability.StartProbe();
        return ProbeReplicaAsync(member, cancellationToken);
    }

    /// <summary>Forgets the positions every listed replica has replayed (see <see cref="ClusterWalHistory.TrimFor"/>).</summary>
    private void TrimHistory() => _history.TrimFor(Replicas);

    private async Task ProbePrimaryAsync(CancellationToken cancellationToken)
    {
        try
        {
            var sentAt = _timeProvider.GetTimestamp();
            var sample = await _primary.ProbeAsync(static connection => ServerQueries.ProbePrimaryAsync(connection, CancellationToken.None), cancellationToken).ConfigureAwait(false);
            _primaryServer = sample.InRecovery ? null : sample.Server;
            _primaryAnswer = sample.InRecovery ? null : new StrongBox<ServerIdentity>(sample.Server);
            if (sample.InRecovery)
            {
                SetPrimaryProblem("the configured primary is in recovery (a standby)");
                return;
            }

            NoteLeader(sample.Server);
            var sampledAt = _timeProvider.GetTimestamp();
            _history.AddPrimarySample(sampledAt, sample.Lsn, sample.SystemIdentifier, sample.Server.Timeline);
            _position.Record(sampledAt, sample.Lsn, sample.SystemIdentifier, sentAt);
            SetPrimaryProblem(null);
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            _primaryServer = null;
            _primaryAnswer = null;
            SetPrimaryProblem(Describe(exception), unanswered: true);
        }
    }

    /// <summary>
    /// Another server answers as the primary than last time (a switchover, a failover, a restart): the primary's pooled sessions
    /// belong to the server before, and the types its data source loaded from the new one may predate its promotion, so the
    /// pools are emptied and each host's types are reloaded on its next writable connection (<see cref="PrimaryTypeCatalog"/>).
    /// </summary>
    private void NoteLeader(ServerIdentity server)
    {
        var last = _lastPrimary;
        _lastPrimary = server;
        if (last is { } before && (!ClusterRoles.IsSameServer(before, server) || before.Timeline != server.Timeline))
        {
            _primaryTypes?.PrimaryChanged();
            _primary.Server.DataSource.Clear();
        }
    }

    private async Task DetectSplitBrainAsync(CancellationToken cancellationToken)
    {
        var writableReplicas = new List<WritableServer>();
        foreach (var member in _members)
        {
            if (member.Replica.WritableServer is { } server)
            {
                writableReplicas.Add(new WritableServer($"replica '{member.Replica.Name}'", server));
            }
        }

        var (writable, problem) = await _splitBrain.FindAsync(_primaryServer, writableReplicas, _timeout, cancellationToken).ConfigureAwait(false);
        var previous = _splitBrainProblem;
        if (problem is not null && previous is null)
        {
            // A second writable server may be a listed replica whose own probe has not seen its promotion yet: probe every
            // replica now, before the split brain is published, so that none is still in rotation as a standby.
            await Task.WhenAll(Array.ConvertAll(_members, member => ReplicaTurnAsync(member, cancellationToken))).ConfigureAwait(false);
        }

        _writableServers = writable;
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
        if (problem is not null)
        {
            _history.PrimaryMissing(unanswered); // until the next sample: the standbys are compared with each other
        }

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

    private async Task ProbeReplicaAsync(ReplicaProbe member, CancellationToken cancellationToken)
    {
        var replica = member.Replica;
        ReplicaHealth health;
        try
        {
            var sentAt = _timeProvider.GetTimestamp(); // before the query (and any connect): the sample bounds every read served until then
            var sample = await member.Channel.ProbeAsync(static connection => ServerQueries.ProbeReplicaAsync(connection, CancellationToken.None), cancellationToken).ConfigureAwait(false);
            var (inRecovery, replay, streaming) = (sample.InRecovery, sample.ReplayLsn, sample.Streaming);
            replica.WritableServer = inRecovery ? null : sample.Server; // out of rotation too: not a standby
            replica.WalReceiver = inRecovery ? sample.WalReceiver : null;
            health = _meter.Measure(inRecovery, replay, streaming);
            if (inRecovery)
            {
                replica.ObserveReplay(replay, sample.Server.StartedAtTicks, sentAt);
            }
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            replica.WritableServer = null;
            replica.WalReceiver = null;
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
}
