using System.Data;
using System.Data.Common;
using System.Diagnostics;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Topology;
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
    private readonly SqlClassifier _classifier;
    private readonly bool _shadow;
    private readonly ContextRoutingStates _states;
    private readonly EfReplicaMetrics _metrics;
    private readonly ILogger _logger;
    private readonly ILogger _topologyLogger;
    private readonly TimeProvider _timeProvider;
    private int _nextReplica = -1;

    public CommandRouter(
        string clusterName,
        ReplicaEndpoint[] replicas,
        SqlClassifier classifier,
        bool shadow,
        ContextRoutingStates states,
        EfReplicaMetrics metrics,
        ILoggerFactory loggerFactory,
        TimeProvider timeProvider)
    {
        _timeProvider = timeProvider;
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
        var inTransaction = command.Transaction is not null
            || System.Transactions.Transaction.Current is not null
            || context?.Database.CurrentTransaction is not null;

        if (state is not null)
        {
            if (inTransaction || !classification.IsReplicaSafe)
            {
                state.SessionPinned = true;
            }

            if (classification.Reason is RoutingReason.WriteStatement or RoutingReason.WriteFunction or RoutingReason.Unrecognized)
            {
                state.HasWritten = true;
            }
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

        if (state is { HasWritten: true })
        {
            return RoutingDecision.Primary(RoutingReason.AfterWrite);
        }

        if (_replicas.Length == 0)
        {
            return RoutingDecision.Primary(RoutingReason.NoReplica);
        }

        if (tags.MaxStaleness is { } maxStaleness)
        {
            var fresh = SelectFreshReplica(maxStaleness, out var lagging);
            return fresh is not null
                ? new RoutingDecision(RoutingReason.Read, fresh)
                : RoutingDecision.Primary(lagging ? RoutingReason.ReplicaLagging : RoutingReason.ReplicaUnavailable);
        }

        var replica = SelectReplica(tried: 0);
        return replica is null ? RoutingDecision.Primary(WhyNoReplica()) : new RoutingDecision(RoutingReason.Read, replica);
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

        return _classifier.ClassifyCached(command.CommandText);
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

        var start = (int)((uint)Interlocked.Increment(ref _nextReplica) % (uint)count);
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

    /// <summary>
    /// Runs <paramref name="command"/> on the decided replica; on a failover error, on the next usable replica; returns
    /// <see langword="false"/> when none is left, so that EF runs the command on the primary as usual. Other errors
    /// (a syntax error, a cancellation) surface unchanged, as they would from the primary.
    /// </summary>
    public bool TryExecuteOnReplica<T>(DbCommand command, CommandEventData eventData, ReplicaEndpoint replica, Func<NpgsqlCommand, T> execute, out T value)
    {
        var source = (NpgsqlCommand)command;
        ulong tried = 0;
        while (true)
        {
            tried |= 1UL << replica.Index;
            try
            {
                value = execute(CreateReplicaCommand(source, replica));
                OnReplicaSuccess(replica, eventData);
                return true;
            }
            catch (Exception exception) when (FailoverErrors.Classify(exception) is not ServerErrorKind.None and var kind)
            {
                var next = OnReplicaFailure(replica, kind, exception, eventData, tried);
                if (next is null)
                {
                    value = default!;
                    return false;
                }

                replica = next;
            }
        }
    }

    /// <inheritdoc cref="TryExecuteOnReplica{T}"/>
    public async ValueTask<ReplicaResult<T>> TryExecuteOnReplicaAsync<T>(
        DbCommand command,
        CommandEventData eventData,
        ReplicaEndpoint replica,
        Func<NpgsqlCommand, CancellationToken, Task<T>> execute,
        CancellationToken cancellationToken)
    {
        var source = (NpgsqlCommand)command;
        ulong tried = 0;
        while (true)
        {
            tried |= 1UL << replica.Index;
            try
            {
                var value = await execute(CreateReplicaCommand(source, replica), cancellationToken).ConfigureAwait(false);
                OnReplicaSuccess(replica, eventData);
                return new ReplicaResult<T>(true, value);
            }
            catch (Exception exception) when (FailoverErrors.Classify(exception) is not ServerErrorKind.None and var kind
                                              && !cancellationToken.IsCancellationRequested)
            {
                var next = OnReplicaFailure(replica, kind, exception, eventData, tried);
                if (next is null)
                {
                    return default;
                }

                replica = next;
            }
        }
    }

    private static NpgsqlCommand CreateReplicaCommand(NpgsqlCommand source, ReplicaEndpoint replica)
    {
        // A data source command opens its own pooled connection and gives it back when the reader is closed.
        var target = replica.DataSource.CreateCommand(source.CommandText);
        target.CommandTimeout = source.CommandTimeout;
        if (source.AllResultTypesAreUnknown)
        {
            target.AllResultTypesAreUnknown = true;
        }
        else if (source.UnknownResultTypeList is { } unknown)
        {
            target.UnknownResultTypeList = unknown;
        }

        var parameters = source.Parameters;
        for (var i = 0; i < parameters.Count; i++)
        {
            target.Parameters.Add(parameters[i].Clone());
        }

        return target;
    }

    private void OnReplicaSuccess(ReplicaEndpoint replica, CommandEventData eventData)
    {
        if (replica.ReportSuccess())
        {
            Log.ReplicaRejoinedRotation(_topologyLogger, replica.Name, _clusterName, "a read succeeded on it again");
        }

        Report(eventData, RoutingTarget.Replica, RoutingReason.Read, replica);
    }

    private ReplicaEndpoint? OnReplicaFailure(ReplicaEndpoint replica, ServerErrorKind kind, Exception exception, CommandEventData eventData, ulong tried)
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
                    state.HasWritten = true;
                    state.SessionPinned = true;
                }

                Report(eventData, RoutingTarget.Primary, RoutingReason.Unrecognized, null);
                return null;
            case ServerErrorKind.RecoveryConflict:
                break;
            default:
                if (replica.ReportFailure())
                {
                    Log.ReplicaLeftRotation(_topologyLogger, replica.Name, _clusterName, $"a read failed on it ({FailoverErrors.GetName(kind)})");
                }

                break;
        }

        var next = SelectReplica(tried);
        if (next is null)
        {
            Report(eventData, RoutingTarget.Primary, RoutingReason.ReplicaUnavailable, null);
        }

        return next;
    }

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

/// <summary>The outcome of an async replica execution: <see cref="Executed"/> is false when the primary must run the command.</summary>
internal readonly record struct ReplicaResult<T>(bool Executed, T Value);
