using System.Data;
using System.Data.Common;
using System.Diagnostics;
using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Topology;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EfReplicaInterceptor.Routing;

/// <summary>
/// Decides the target of each command and runs replica-bound commands on a replica connection. One per cluster, shared by
/// every context using it: it holds no per-call state in fields.
/// </summary>
internal sealed class CommandRouter
{
    private readonly string _clusterName;
    private readonly ReplicaEndpoint[] _replicas;
    private volatile SqlClassifier? _classifier; // null while the application's functions are still being learned
    private readonly bool _shadow;
    private readonly ContextRoutingStates _states;
    private readonly EfReplicaMetrics _metrics;
    private readonly ILogger _logger;
    private readonly ILogger _topologyLogger;
    private readonly TimeProvider _timeProvider;
    private readonly NpgsqlDataSource _primary;
    private readonly PrimaryPosition _primaryPosition;
    private readonly ReadYourWritesMode _readYourWrites;
    private readonly TimeSpan _readYourWritesWindow;
    private readonly TimeSpan _readYourWritesMaxWait;
    private readonly InvalidTokenHandling _invalidTokenHandling;
    private readonly LoadBalancing _loadBalancing;
    private readonly int[] _schedule;
    private int _nextReplica = -1;

    public CommandRouter(
        string clusterName,
        NpgsqlDataSource primary,
        PrimaryPosition primaryPosition,
        ReplicaEndpoint[] replicas,
        SqlClassifier? classifier,
        EfReplicaOptions options,
        ContextRoutingStates states,
        EfReplicaMetrics metrics,
        ILoggerFactory loggerFactory,
        TimeProvider timeProvider)
    {
        _timeProvider = timeProvider;
        _primary = primary;
        _primaryPosition = primaryPosition;
        var shadow = options.ShadowMode;
        _readYourWrites = options.ReadYourWrites;
        _readYourWritesWindow = options.ReadYourWritesWindow;
        _readYourWritesMaxWait = options.ReadYourWritesMaxWait;
        _invalidTokenHandling = options.InvalidTokenHandling;
        _loadBalancing = options.LoadBalancing;
        _schedule = BuildSchedule(options.Replicas.Select(replica => replica.Weight).ToArray());
        _clusterName = clusterName;
        _replicas = replicas;
        _classifier = classifier;
        _shadow = shadow;
        _states = states;
        _metrics = metrics;
        _logger = loggerFactory.CreateLogger(Log.RoutingCategory);
        _topologyLogger = loggerFactory.CreateLogger(Log.TopologyCategory);
    }

    public bool IsShadowMode => _shadow;

    /// <summary>Installs the classifier that knows the application's learned volatile functions.</summary>
    public void UseClassifier(SqlClassifier classifier) => _classifier = classifier;

    public ContextRoutingStates States => _states;

    /// <summary>
    /// The target of <paramref name="command"/>, and the bookkeeping its kind implies (a write marks the context as having
    /// written; a write, a lock, a session statement or a transaction pins the open connection's session to the primary).
    /// </summary>
    public RoutingDecision Decide(DbCommand command, CommandEventData eventData)
    {
        var context = eventData.Context;
        var state = context is null ? null : _states.Get(context);
        var classification = Classify(command);
        // EF sets command.Transaction from its connection's current transaction (BeginTransaction and UseTransaction
        // alike); an ambient TransactionScope shows only in Transaction.Current. context.Database is not touched: its
        // first use resolves the database facade's dependencies, about 0.9 KB per context.
        var inTransaction = command.Transaction is not null || System.Transactions.Transaction.Current is not null;

        var ambient = EfReplicaScope.CurrentConsistency?.State;
        if (classification.Reason is RoutingReason.WriteStatement or RoutingReason.WriteFunction or RoutingReason.Unrecognized)
        {
            MarkWrite(state, ambient);
            if (state is not null)
            {
                state.WriteInTransaction = command.Transaction is not null;
            }
        }

        if (state is not null && (inTransaction || !classification.IsReplicaSafe))
        {
            state.SessionPinned = true;
        }

        if (inTransaction)
        {
            return RoutingDecision.Primary(RoutingReason.Transaction);
        }

        if (!classification.IsReplicaSafe)
        {
            return RoutingDecision.Primary(classification.Reason);
        }

        var tags = QueryTags.Read(command.CommandText);
        if (tags.UsePrimary)
        {
            return RoutingDecision.Primary(RoutingReason.TaggedPrimary);
        }

        if (EfReplicaScope.IsPrimaryForced)
        {
            return RoutingDecision.Primary(RoutingReason.PrimaryScope);
        }

        if (state is { SessionPinned: true })
        {
            return RoutingDecision.Primary(RoutingReason.SessionPinned);
        }

        var contextCausal = state is { Causal.IsActive: true } ? state.Causal : null;
        var ambientCausal = ambient is { IsActive: true } ? ambient : null;
        if ((contextCausal ?? ambientCausal) is not null && _readYourWrites != ReadYourWritesMode.Off)
        {
            var afterWrite = AfterWrite(contextCausal, ambientCausal);
            if (afterWrite is { } decided)
            {
                return decided;
            }
        }

        if (_replicas.Length == 0)
        {
            return RoutingDecision.Primary(RoutingReason.NoReplica);
        }

        if (tags.MaxStaleness is { } maxStaleness)
        {
            var fresh = SelectFreshReplica(maxStaleness, out var lagging);
            return fresh is not null
                ? RoutingDecision.ConstrainedRead(fresh)
                : RoutingDecision.Primary(lagging ? RoutingReason.ReplicaLagging : RoutingReason.ReplicaUnavailable);
        }

        var replica = SelectReplica(tried: 0);
        return replica is null ? RoutingDecision.Primary(WhyNoReplica()) : new RoutingDecision(RoutingReason.Read, replica);
    }

    private void MarkWrite(ContextRoutingState? state, CausalState? ambient)
    {
        var now = _timeProvider.GetTimestamp();
        if (state is not null)
        {
            state.Causal.MarkWrite(this, now);
            state.WriteInFlight = true;
            state.InFlightAmbient = ambient;
        }

        ambient?.MarkWrite(this, now);
    }

    /// <summary>
    /// A write command finished (its reader was disposed, its non-query returned) or a transaction committed: the scopes it
    /// wrote in record the write again, so that a position captured while it was running is not taken as covering it.
    /// </summary>
    public void WriteCompleted(DbContext? context, bool committed)
    {
        if (context is null)
        {
            return;
        }

        var state = _states.Get(context);
        if (!state.WriteInFlight)
        {
            return; // the usual case: a read finished
        }

        var now = _timeProvider.GetTimestamp();
        state.Causal.MarkWrite(this, now);
        state.InFlightAmbient?.MarkWrite(this, now);
        if (committed || !state.WriteInTransaction)
        {
            state.WriteInFlight = false; // a write inside an EF transaction is recorded once more at its commit
        }
    }

    /// <summary>The decision for a read in a scope that wrote, or null when the read may go to a replica as usual.</summary>
    private RoutingDecision? AfterWrite(CausalState? contextCausal, CausalState? ambientCausal)
    {
        switch (_readYourWrites)
        {
            case ReadYourWritesMode.Primary:
                return RoutingDecision.Primary(RoutingReason.AfterWrite);
            case ReadYourWritesMode.TimeWindow when contextCausal?.RestoredToken is null && ambientCausal?.RestoredToken is null:
                return contextCausal?.WroteWithin(_readYourWritesWindow, _timeProvider) == true
                       || ambientCausal?.WroteWithin(_readYourWritesWindow, _timeProvider) == true
                    ? RoutingDecision.Primary(RoutingReason.AfterWrite)
                    : null;
            default:
                return _replicas.Length == 0
                    ? RoutingDecision.Primary(RoutingReason.AfterWrite)
                    : RoutingDecision.CatchUp(contextCausal, ambientCausal);
        }
    }

    /// <summary>
    /// Resolves a read that must see its scope's writes: captures the writes' WAL position on the primary if that is still
    /// to do (one round trip per unit of work), then picks a replica known to have replayed it, else asks the replicas
    /// directly, else (optionally after waiting) the primary. Sync callers pass <paramref name="async"/> false and every
    /// step runs synchronously.
    /// </summary>
    public async ValueTask<RoutingDecision> ResolveCatchUpAsync(RoutingDecision decision, bool async, CancellationToken cancellationToken)
    {
        var contextCausal = decision.ContextCausal;
        var ambientCausal = decision.AmbientCausal;
        try
        {
            if (!await CheckRestoredTokenAsync(contextCausal, async, cancellationToken).ConfigureAwait(false)
                | !await CheckRestoredTokenAsync(ambientCausal, async, cancellationToken).ConfigureAwait(false))
            {
                return RoutingDecision.Primary(RoutingReason.AfterWrite);
            }

            if (contextCausal?.IsPending == true || ambientCausal?.IsPending == true)
            {
                await CaptureCoreAsync(contextCausal, ambientCausal, async, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception exception) when (FailoverErrors.Classify(exception, FailurePhase.Executing, onStandby: false) is not ServerErrorKind.None && !cancellationToken.IsCancellationRequested)
        {
            // The position cannot be obtained: the scope's reads stay on the primary (the write is pending still).
            return RoutingDecision.Primary(RoutingReason.AfterWrite);
        }

        VerifyRestoredPosition(contextCausal);
        VerifyRestoredPosition(ambientCausal);
        var required = Math.Max(contextCausal?.RequiredLsn ?? 0, ambientCausal?.RequiredLsn ?? 0);
        if (required == 0)
        {
            var any = SelectReplica(tried: 0);
            return any is null ? RoutingDecision.Primary(WhyNoReplica()) : new RoutingDecision(RoutingReason.Read, any);
        }

        var deadline = _timeProvider.GetTimestamp() + (long)(_readYourWritesMaxWait.TotalSeconds * _timeProvider.TimestampFrequency);
        while (true)
        {
            var caughtUp = SelectCaughtUpReplica(required);
            if (caughtUp is not null)
            {
                return RoutingDecision.ConstrainedRead(caughtUp);
            }

            var checkedReplica = await CheckReplayDirectlyAsync(required, async, cancellationToken).ConfigureAwait(false);
            if (checkedReplica is not null)
            {
                return RoutingDecision.ConstrainedRead(checkedReplica);
            }

            if (_timeProvider.GetTimestamp() >= deadline)
            {
                return RoutingDecision.Primary(RoutingReason.AfterWrite);
            }

            if (async)
            {
                await Task.Delay(CatchUpPollInterval, _timeProvider, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                Thread.Sleep(CatchUpPollInterval);
            }
        }
    }

    private static readonly TimeSpan CatchUpPollInterval = TimeSpan.FromMilliseconds(5);

    private const string CaptureSql = "SELECT pg_current_wal_lsn(), (SELECT system_identifier FROM pg_control_system())";

    /// <summary>Captures the primary's WAL position for a scope's pending writes (used by tokens too).</summary>
    public async ValueTask CaptureAsync(CausalState state, CancellationToken cancellationToken)
    {
        if (state.IsPending)
        {
            await CaptureCoreAsync(state, null, async: true, cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask CaptureCoreAsync(CausalState? first, CausalState? second, bool async, CancellationToken cancellationToken)
    {
        var firstGeneration = first?.Generation ?? 0;
        var secondGeneration = second?.Generation ?? 0;
        var (lsn, systemIdentifier) = await QueryPrimaryPositionAsync(async, cancellationToken).ConfigureAwait(false);
        first?.Satisfy(lsn, systemIdentifier, firstGeneration);
        second?.Satisfy(lsn, systemIdentifier, secondGeneration);
    }

    private async ValueTask<(ulong Lsn, ulong SystemIdentifier)> QueryPrimaryPositionAsync(bool async, CancellationToken cancellationToken)
    {
        _metrics.PositionCaptured(_clusterName);
        var connection = async ? await _primary.OpenConnectionAsync(cancellationToken).ConfigureAwait(false) : _primary.OpenConnection();
        await using (connection.ConfigureAwait(false))
        {
            await using var command = new NpgsqlCommand(CaptureSql, connection);
            await using var reader = async
                ? await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false)
                : command.ExecuteReader();
            _ = async ? await reader.ReadAsync(cancellationToken).ConfigureAwait(false) : reader.Read();
            var lsn = (ulong)reader.GetFieldValue<NpgsqlTypes.NpgsqlLogSequenceNumber>(0);
            var systemIdentifier = unchecked((ulong)reader.GetInt64(1));
            _primaryPosition.Record(_timeProvider.GetTimestamp(), lsn, systemIdentifier);
            return (lsn, systemIdentifier);
        }
    }

    /// <summary>
    /// Checks a restored token on first use: well-formed and from this cluster (its system identifier, known from the
    /// monitor's probes, so usually no round trip). A position beyond every primary position seen so far is accepted but
    /// verified against the next primary sample (<see cref="VerifyRestoredPosition"/>): a forged token, or one from before a
    /// failover, is lowered then, so it cannot pin reads to the primary forever. Returns false when reads must go to the
    /// primary for now.
    /// </summary>
    private async ValueTask<bool> CheckRestoredTokenAsync(CausalState? state, bool async, CancellationToken cancellationToken)
    {
        var token = state?.TakeRestoredToken();
        if (token is null)
        {
            return true;
        }

        if (!ConsistencyToken.TryParse(token, out var tokenSystem, out var tokenLsn))
        {
            return RejectToken("it is not a consistency token (expected 'efr1.' and 22 base64url characters)");
        }

        var clusterSystem = _primaryPosition.SystemIdentifier;
        if (clusterSystem == 0)
        {
            (_, clusterSystem) = await QueryPrimaryPositionAsync(async, cancellationToken).ConfigureAwait(false);
        }

        if (tokenSystem != clusterSystem)
        {
            return RejectToken($"it was issued by another database cluster (system identifier {tokenSystem}, this cluster is {clusterSystem})");
        }

        if (_primaryPosition.Latest is { } latest && tokenLsn <= latest.Lsn)
        {
            state!.Require(tokenLsn, tokenSystem);
        }
        else
        {
            state!.RequireUnverified(tokenLsn, tokenSystem, _timeProvider.GetTimestamp());
        }

        return true;

        bool RejectToken(string why)
        {
            if (_invalidTokenHandling == InvalidTokenHandling.Throw)
            {
                throw new InvalidOperationException($"The consistency token given to EfReplicaScope.BeginConsistency is not valid for cluster '{_clusterName}': {why}. Set EfReplica:InvalidTokenHandling to Ignore to read without it.");
            }

            Log.ConsistencyTokenIgnored(_logger, _clusterName, why);
            return true;
        }
    }

    /// <summary>Lowers a restored position that a primary sample taken after the restore shows to be from the future.</summary>
    private void VerifyRestoredPosition(CausalState? state)
    {
        if (state is null)
        {
            return;
        }

        var since = state.UnverifiedSince;
        if (since == 0 || _primaryPosition.Latest is not { } latest || latest.Timestamp <= since)
        {
            return;
        }

        if (state.RequiredLsn > latest.Lsn)
        {
            Log.ConsistencyTokenClamped(_logger, _clusterName);
            state.Clamp(latest.Lsn);
        }
        else
        {
            state.Verified();
        }
    }

    /// <summary>A replica in rotation known (from the monitor or an earlier check) to have replayed <paramref name="required"/>.</summary>
    private ReplicaEndpoint? SelectCaughtUpReplica(ulong required)
    {
        var replicas = _replicas;
        var start = (int)((uint)Interlocked.Increment(ref _nextReplica) % (uint)replicas.Length);
        for (var i = 0; i < replicas.Length; i++)
        {
            var replica = replicas[(start + i) % replicas.Length];
            if (replica.KnownReplayLsn >= required && replica.IsAdmitted && replica.TryAcquire())
            {
                return replica;
            }
        }

        return null;
    }

    /// <summary>Asks each replica in rotation for its replayed position (one small query each) until one has <paramref name="required"/>.</summary>
    private async ValueTask<ReplicaEndpoint?> CheckReplayDirectlyAsync(ulong required, bool async, CancellationToken cancellationToken)
    {
        foreach (var replica in _replicas)
        {
            if (!replica.IsAdmitted)
            {
                continue;
            }

            try
            {
                _metrics.ReplayChecked(_clusterName);
                var connection = async ? await replica.DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false) : replica.DataSource.OpenConnection();
                await using (connection.ConfigureAwait(false))
                {
                    await using var command = new NpgsqlCommand("SELECT pg_last_wal_replay_lsn()", connection);
                    var value = async ? await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) : command.ExecuteScalar();
                    if (value is NpgsqlTypes.NpgsqlLogSequenceNumber lsn)
                    {
                        replica.ObserveReplay((ulong)lsn);
                    }
                }
            }
            catch (Exception exception) when (FailoverErrors.Classify(exception, FailurePhase.Opening, onStandby: true) is not ServerErrorKind.None && !cancellationToken.IsCancellationRequested)
            {
                if (replica.ReportFailure())
                {
                    Log.ReplicaLeftRotation(_topologyLogger, replica.Name, _clusterName, "a replay position check failed on it");
                }

                continue;
            }

            if (replica.KnownReplayLsn >= required && replica.TryAcquire())
            {
                return replica;
            }
        }

        return null;
    }

    /// <summary>Off the hot path: no replica could take a read. Lagging when one is only out for its lag.</summary>
    private RoutingReason WhyNoReplica()
    {
        foreach (var replica in _replicas)
        {
            if (replica.Health.IsLagging)
            {
                return RoutingReason.ReplicaLagging;
            }
        }

        return RoutingReason.ReplicaUnavailable;
    }

    /// <summary>A replica in rotation whose current lag is within <paramref name="maxStaleness"/>, in round-robin order.</summary>
    private ReplicaEndpoint? SelectFreshReplica(TimeSpan maxStaleness, out bool lagging)
    {
        lagging = false;
        var replicas = _replicas;
        var now = _timeProvider.GetTimestamp();
        var start = (int)((uint)Interlocked.Increment(ref _nextReplica) % (uint)replicas.Length);
        for (var i = 0; i < replicas.Length; i++)
        {
            var replica = replicas[(start + i) % replicas.Length];
            if (!replica.IsAdmitted)
            {
                continue;
            }

            if (replica.CurrentLag(now) is not { } lag || lag > maxStaleness)
            {
                lagging = true;
                continue;
            }

            if (replica.TryAcquire())
            {
                return replica;
            }
        }

        return null;
    }

    private SqlClassification Classify(DbCommand command)
    {
        // Only Npgsql text commands can be replayed on a replica connection (their parameters are cloneable).
        if (command is not NpgsqlCommand || command.CommandType != CommandType.Text)
        {
            return SqlClassification.NeedsPrimary(RoutingReason.Unrecognized);
        }

        // Until the volatile functions of the application's schemas are known, a read might call one: primary.
        return _classifier?.ClassifyCached(command.CommandText) ?? SqlClassification.NeedsPrimary(RoutingReason.Unrecognized);
    }

    /// <summary>The next usable replica in round-robin order, skipping those whose bit is set in <paramref name="tried"/>.</summary>
    public ReplicaEndpoint? SelectReplica(ulong tried)
    {
        var replicas = _replicas;
        var count = replicas.Length;
        if (count == 0)
        {
            return null;
        }

        if (_loadBalancing == LoadBalancing.LeastLag)
        {
            return SelectLeastLagging(tried);
        }

        // Weighted round-robin: the schedule lists each replica as often as its weight, interleaved, built once.
        var schedule = _schedule;
        var start = schedule[(int)((uint)Interlocked.Increment(ref _nextReplica) % (uint)schedule.Length)];
        for (var i = 0; i < count; i++)
        {
            var index = start + i;
            if (index >= count)
            {
                index -= count;
            }

            if ((tried & (1UL << index)) != 0)
            {
                continue;
            }

            var replica = replicas[index];
            if (replica.TryAcquire())
            {
                return replica;
            }
        }

        return null;
    }

    /// <summary>The replica in rotation with the least measured lag; ties are broken in round-robin order.</summary>
    private ReplicaEndpoint? SelectLeastLagging(ulong tried)
    {
        var replicas = _replicas;
        var now = _timeProvider.GetTimestamp();
        var start = (int)((uint)Interlocked.Increment(ref _nextReplica) % (uint)replicas.Length);
        for (var attempt = 0; attempt < replicas.Length; attempt++)
        {
            ReplicaEndpoint? best = null;
            var bestLag = TimeSpan.MaxValue;
            for (var i = 0; i < replicas.Length; i++)
            {
                var index = (start + i) % replicas.Length;
                var replica = replicas[index];
                if ((tried & (1UL << index)) != 0 || !replica.IsAdmitted)
                {
                    continue;
                }

                var lag = replica.CurrentLag(now) ?? TimeSpan.MaxValue;
                if (best is null || lag < bestLag)
                {
                    (best, bestLag) = (replica, lag);
                }
            }

            if (best is null)
            {
                return null;
            }

            if (best.TryAcquire())
            {
                return best;
            }

            tried |= 1UL << best.Index; // lost a half-open race: try the next best
        }

        return null;
    }

    /// <summary>Smooth weighted round-robin order (as nginx does it): weights 3 and 1 give 0, 0, 1, 0.</summary>
    private static int[] BuildSchedule(IReadOnlyList<int> weights)
    {
        if (weights.Count == 0)
        {
            return [0];
        }

        var total = weights.Sum();
        var current = new int[weights.Count];
        var schedule = new int[total];
        for (var slot = 0; slot < total; slot++)
        {
            var chosen = 0;
            for (var i = 0; i < weights.Count; i++)
            {
                current[i] += weights[i];
                if (current[i] > current[chosen])
                {
                    chosen = i;
                }
            }

            current[chosen] -= total;
            schedule[slot] = chosen;
        }

        return schedule;
    }

    /// <summary>A read the library ran itself succeeded on <paramref name="replica"/> (or the primary when null).</summary>
    public void ReadSucceeded(CommandEventData eventData, ReplicaEndpoint? replica, RoutingReason reason)
    {
        if (replica is null)
        {
            Report(eventData, RoutingTarget.Primary, reason, null);
            return;
        }

        if (replica.ReportSuccess())
        {
            Log.ReplicaRejoinedRotation(_topologyLogger, replica.Name, _clusterName, "a read succeeded on it again");
        }

        Report(eventData, RoutingTarget.Replica, reason, replica);
    }

    /// <summary>
    /// A read failed on <paramref name="replica"/> with a failover error: opens its breaker (unless the failure says
    /// nothing about the replica's health), clears its pool, tells the monitor, and picks where the read goes next: another
    /// replica in rotation not yet tried (only for an unconstrained read), else the primary (null).
    /// </summary>
    public ReplicaEndpoint? OnReplicaReadFailure(ReplicaEndpoint replica, ServerErrorKind kind, Exception exception, CommandEventData eventData, ulong tried, bool constrained)
    {
        Log.ReplicaFailedForCommand(_logger, exception, replica.Name, _clusterName, eventData.CommandId, FailoverErrors.GetName(kind));
        _metrics.ReplicaError(_clusterName, replica.Name, FailoverErrors.GetName(kind));

        switch (kind)
        {
            case ServerErrorKind.ReadOnly:
                // The standby refused a write the classifier took for a read: it belongs on the primary, and so does the
                // rest of this context's work. The replica itself is fine.
                if (eventData.Context is { } context)
                {
                    var state = _states.Get(context);
                    MarkWrite(state, EfReplicaScope.CurrentConsistency?.State);
                    state.WriteInFlight = false;
                    state.SessionPinned = true;
                }

                return null;
            case ServerErrorKind.RecoveryConflict:
                break;
            default:
                replica.DataSource.Clear();
                if (replica.ReportFailure())
                {
                    Log.ReplicaLeftRotation(_topologyLogger, replica.Name, _clusterName, $"a read failed on it ({FailoverErrors.GetName(kind)})");
                }

                break;
        }

        return constrained ? null : SelectReplica(tried);
    }

    /// <summary>
    /// True when the library runs the command itself (with retries): a read outside any transaction whose session does not
    /// matter. Writes, locking reads, session statements, transactions and pinned sessions stay on EF's own connection.
    /// </summary>
    public static bool RunsAsRetryableRead(RoutingDecision decision) => decision.Reason is RoutingReason.Read
        or RoutingReason.AfterWrite or RoutingReason.NoReplica or RoutingReason.ReplicaUnavailable or RoutingReason.ReplicaLagging
        or RoutingReason.TaggedPrimary or RoutingReason.PrimaryScope;

    /// <summary>Reports a decision that sends the command to the primary (also every decision in shadow mode).</summary>
    public void ReportPrimary(CommandEventData eventData, RoutingDecision decision)
        => Report(eventData, decision.Target, decision.Reason, decision.Replica);

    private void Report(CommandEventData eventData, RoutingTarget decided, RoutingReason reason, ReplicaEndpoint? replica)
    {
        var shadow = _shadow && decided == RoutingTarget.Replica;
        var actual = _shadow ? RoutingTarget.Primary : decided;
        _metrics.CommandRouted(_clusterName, actual, reason, shadow);

        if (_logger.IsEnabled(LogLevel.Debug))
        {
            var replicaSuffix = replica is null ? string.Empty : replica.LogSuffix;
            if (_shadow)
            {
                Log.CommandRoutedShadow(_logger, eventData.CommandId, eventData.CommandSource.ToString(), RoutingReasons.GetName(decided), RoutingReasons.GetName(reason), _clusterName, replicaSuffix);
            }
            else
            {
                Log.CommandRouted(_logger, eventData.CommandId, eventData.CommandSource.ToString(), RoutingReasons.GetName(actual), RoutingReasons.GetName(reason), _clusterName, replicaSuffix);
            }
        }

        var activity = Activity.Current;
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag(EfReplicaDiagnostics.TargetTag, RoutingReasons.GetName(actual));
            activity.SetTag(EfReplicaDiagnostics.ReasonTag, RoutingReasons.GetName(reason));
            activity.SetTag(EfReplicaDiagnostics.ClusterTag, _clusterName);
            if (replica is not null)
            {
                activity.SetTag(EfReplicaDiagnostics.ReplicaTag, replica.Name);
            }

            if (_shadow)
            {
                activity.SetTag(EfReplicaDiagnostics.ShadowTag, true);
                activity.SetTag(EfReplicaDiagnostics.DecidedTargetTag, RoutingReasons.GetName(decided));
            }
        }
    }
}

