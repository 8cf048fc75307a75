using System.Runtime.ExceptionServices;
using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Topology;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;
using Polly;

namespace EfReplicaInterceptor.Routing;

/// <summary>
/// Runs a read (outside any transaction, on no pinned session) on a connection the library opens: from the decided
/// replica's data source, or from the primary's. If it fails with a failover error it is retried, boundedly: the first
/// retry at once on another replica (or on the primary), later ones through a Polly retry pipeline with exponential
/// backoff and jitter. What a failure does to the server is the failure policy's row for its kind: a replica leaves the
/// rotation (its breaker opens; the monitor or a single half-open probe lets it back) only for failures that say something
/// about the replica. A statement's own error is not a failover error: it is thrown as the server's exception, once, and
/// changes nothing. The first attempt does not touch Polly, so the steady state costs nothing.
/// </summary>
/// <remarks>
/// A read for the primary whose server is gone (unreachable, connection lost, hung) runs next on the listed node the
/// monitor knows answers as the primary, if there is exactly one (a promotion the primary's multi-host connection string
/// has not noticed yet: Npgsql keeps a host it saw as a standby out for its recheck time). When the retries are spent
/// and the primary is still gone, the read waits for the topology, polling with a growing step, until a node answers as
/// the primary or the primary's string reaches a primary again, bounded by the read deadline (<c>Failover:ReadDeadline</c>)
/// from the read's start; only then does it fail. Writes never come here.
/// </remarks>
internal sealed partial class ReadExecutor
{
    private static readonly ResiliencePropertyKey<bool> FailoverFailure = new("EfReplica.FailoverFailure");

    /// <summary>The first and the longest step of the wait for the topology (the step doubles in between).</summary>
    private static readonly TimeSpan MinTopologyPoll = TimeSpan.FromMilliseconds(25);

    private static readonly TimeSpan MaxTopologyPoll = TimeSpan.FromMilliseconds(400);

    private readonly string _cluster;
    private readonly WatchedServer _primary;
    private readonly ReplicaSelector _selector;
    private readonly ConsistencyResolver _consistency;
    private readonly RoutingTelemetry _telemetry;
    private readonly EfReplicaMetrics _metrics;
    private readonly TimeProvider _timeProvider;
    private readonly int _maxRetries;
    private readonly ResiliencePipeline _laterRetries;
    private readonly ILogger _logger;
    private readonly ILogger _topologyLogger;
    private readonly TimeSpan _firstTopologyPoll;
    private readonly TimeSpan? _primaryWait;

    public ReadExecutor(
        string cluster,
        WatchedServer primary,
        ReplicaSelector selector,
        ConsistencyResolver consistency,
        RoutingTelemetry telemetry,
        EfReplicaMetrics metrics,
        FailoverOptions options,
        TimeProvider timeProvider,
        ILoggerFactory loggerFactory)
    {
        _cluster = cluster;
        _primary = primary;
        _selector = selector;
        _consistency = consistency;
        _telemetry = telemetry;
        _metrics = metrics;
        _timeProvider = timeProvider;
        _maxRetries = options.MaxRetries;
        _logger = loggerFactory.CreateLogger(Log.RoutingCategory);
        _topologyLogger = loggerFactory.CreateLogger(Log.TopologyCategory);
        _firstTopologyPoll = options.BaseDelay < MinTopologyPoll ? MinTopologyPoll : options.BaseDelay;
        _primaryWait = options.PrimaryWait;

        // The pipeline's own first run is the first retry, at once; its retries back off.
        _laterRetries = RetryPipelines.Build("EfReplica.ReadRetry", options.MaxRetries - 1, options, static args => ValueTask.FromResult(
            args.Outcome.Exception is not null && args.Context.Properties.GetValue(FailoverFailure, false)), timeProvider);
    }

    /// <summary>
    /// Runs the read; with <paramref name="async"/> false every step runs synchronously. <paramref name="resolver"/>
    /// resolves <paramref name="decision"/> again, when it can (<see cref="RoutingDecision.CanResolveAgain"/>), while the
    /// primary is gone.
    /// </summary>
    public async ValueTask<T> ExecuteAsync<T>(NpgsqlCommand source, CommandEventData eventData, LeaseState? lease, RoutingDecision decision, CommandRouter resolver, ReadOperation<T> operation, bool async, CancellationToken cancellationToken)
    {
        var attempt = new Attempt<T>(this, source, eventData, lease, operation, decision);

        // The first run is Attempt.RunAsync written out here, not awaited through it: one async method fewer between EF and
        // Npgsql on every read. It starts as every run does (BeginAsync: the Long Fork wait when it goes to the primary).
        await attempt.BeginAsync(async, cancellationToken).ConfigureAwait(false);
        try
        {
            return await RunOnceAsync(attempt, async, cancellationToken).ConfigureAwait(false);
        }
        catch (StaleTypesException stale) when (attempt.Target is not null)
        {
            // The result named a type the replica's session does not know: the same read again there once its types are
            // reloaded (not a retry: it failed over nowhere), then the retries as for any first run.
            cancellationToken.ThrowIfCancellationRequested();
            await attempt.ReloadTypesAsync(stale, async, cancellationToken).ConfigureAwait(false);
            try
            {
                return await attempt.RunAsync(async, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception) when (attempt.LastFailure != ServerErrorKind.None && _maxRetries > 0 && !cancellationToken.IsCancellationRequested)
            {
                // Failed over (Attempt.RunAsync recorded it): retried below.
            }
        }
        catch (Exception exception) when (attempt.FailedOver(cancellationToken))
        {
            attempt.RunFailed(exception);
            if (_maxRetries <= 0 || cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            // Retried below: the pipeline's first run is the first retry (at once, elsewhere, or on the primary with a
            // fresh pool); its own retries back off.
        }

        ExceptionDispatchInfo failure;
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        try
        {
            if (async)
            {
                return await _laterRetries.ExecuteAsync(
                    static async (context, attempt) => await attempt.RunInPipelineAsync(context).ConfigureAwait(false),
                    context,
                    attempt).ConfigureAwait(false);
            }

            return _laterRetries.Execute(static (context, attempt) => attempt.RunInPipeline(context), context, attempt);
        }
        catch (Exception exception) when (attempt.PrimaryGone && !cancellationToken.IsCancellationRequested)
        {
            failure = ExceptionDispatchInfo.Capture(exception);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }

        return await WaitForTopologyAsync(attempt, decision, resolver, failure, async, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// One run of the read on the attempt's server, through <see cref="ServerCall"/> under the server's
    /// <see cref="OperationWatch"/>: if the server stays silent for the read deadline (or the caller cancels and the server
    /// does not stop), its connection is broken and the run fails with a <see cref="ServerDeadlineException"/> (or the
    /// caller's <see cref="OperationCanceledException"/>). The caller's token is not handed to Npgsql's execution (see
    /// <see cref="OperationWatch"/>). A reader handed to EF keeps the watch until EF closes it.
    /// </summary>
    private static ValueTask<T> RunOnceAsync<T>(Attempt<T> attempt, bool async, CancellationToken cancellationToken)
    {
        var server = attempt.Server;
        return ServerCall.RunAsync<Attempt<T>, T>(server, server.WatchRead(attempt.Source.CommandTimeout, cancellationToken), connection: null, attempt, async, cancellationToken);
    }

    /// <summary>A read the library ran itself succeeded on <paramref name="replica"/> (or the primary when null).</summary>
    private void Succeeded(CommandEventData eventData, LeaseState? lease, ReplicaEndpoint? replica, RoutingReason reason, ServerAddress server)
    {
        _consistency.ReadServed(lease?.Scope, replica); // where the scopes' reads ran, for monotonic reads
        if (replica is not null && replica.ReportSuccess())
        {
            Log.ReplicaRejoinedRotation(_topologyLogger, replica.Name, _cluster, "a read succeeded on it again");
        }

        _telemetry.Report(eventData, replica is null ? RoutingTarget.Primary : RoutingTarget.Replica, reason, replica, server);
    }

    private void PrimaryFailed(ServerErrorKind kind, Exception exception, CommandEventData eventData, ReplicaEndpoint? writable)
    {
        Log.PrimaryReadFailed(_logger, exception, _cluster, eventData.CommandId, FailoverErrors.GetName(kind));
        _selector.Membership.RequestRefresh(); // the cluster may have changed: the topology source looks again now
        if (FailurePolicy.For(kind).ClearsPrimaryPool)
        {
            (writable?.DataSource ?? _primary.DataSource).Clear(); // stale pooled connections after a restart or failover
        }
    }

    /// <summary>Whether a read for the primary that failed this way says the primary's server is gone (not a session's own trouble).</summary>
    private static bool MeansPrimaryGone(ServerErrorKind kind)
        => kind is ServerErrorKind.Unreachable or ServerErrorKind.ConnectionLost or ServerErrorKind.Unresponsive;

    /// <summary>
    /// A read failed on <paramref name="replica"/> with a failover error: applies the failure policy (the replica may leave
    /// the rotation and its pool be cleared; a statement a standby refused as a write goes to the primary as a write) and
    /// picks where the read goes next: another replica in rotation not yet tried (only for an unconstrained read), else the
    /// primary (null).
    /// </summary>
    private ReplicaEndpoint? ReplicaFailed(ReplicaEndpoint replica, ServerErrorKind kind, Exception exception, CommandEventData eventData, LeaseState? lease, ulong tried, bool constrained)
    {
        Log.ReplicaFailedForCommand(_logger, exception, replica.Name, _cluster, eventData.CommandId, FailoverErrors.GetName(kind));
        _metrics.ReplicaError(_cluster, replica.Name, FailoverErrors.GetName(kind));
        _selector.Membership.RequestRefresh(); // the cluster may have changed: the topology source looks again now
        var rule = FailurePolicy.For(kind);
        if (rule.ClearsReplicaPool)
        {
            replica.DataSource.Clear();
        }

        if (rule.ReplicaLeavesRotation && replica.ReportFailure())
        {
            Log.ReplicaLeftRotation(_topologyLogger, replica.Name, _cluster, $"a read failed on it ({FailoverErrors.GetName(kind)})");
        }

        if (rule.ReadNext == ReadFailureNext.PrimaryAsWrite)
        {
            // The standby refused a write the classifier took for a read: it belongs on the primary, and so does the rest
            // of this lease's work. The replica itself is fine.
            var ambient = EfReplicaScope.CurrentConsistency?.StateFor(_consistency);
            var now = _timeProvider.GetTimestamp();
            if (lease is not null)
            {
                lease.StandbyRefusedWrite(ambient, now);
            }
            else
            {
                ambient?.MarkWrite(now);
            }

            return null;
        }

        return constrained ? null : _selector.Select(ReplicaRequirement.Any, tried, out _);
    }

    private static NpgsqlCommand Clone(NpgsqlCommand source, NpgsqlConnection connection)
    {
        var target = new NpgsqlCommand(source.CommandText, connection) { CommandTimeout = source.CommandTimeout };
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
}
