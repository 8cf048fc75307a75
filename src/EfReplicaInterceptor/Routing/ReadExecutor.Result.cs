using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Topology;
using Npgsql;

namespace EfReplicaInterceptor.Routing;

/// <summary>Where a <see cref="WatchedReader"/>'s result comes from: enough to report its failure.</summary>
/// <param name="Executor">The executor that ran the read.</param>
/// <param name="Server">The server it ran on.</param>
/// <param name="Replica">The replica it ran on, or null for the primary.</param>
/// <param name="CommandId">EF's identifier of the command, for events.</param>
/// <param name="Connection">The read's connection (the reader closes it).</param>
/// <param name="CancellationToken">The caller's token.</param>
internal readonly record struct ReadResultSource(
    ReadExecutor Executor, WatchedServer Server, ReplicaEndpoint? Replica, Guid CommandId, NpgsqlConnection Connection, CancellationToken CancellationToken);

/// <summary>A result that failed while EF was reading it (see <see cref="WatchedReader"/>).</summary>
internal sealed partial class ReadExecutor
{
    /// <summary>
    /// A call into a read's result failed after the reader was handed to EF: the exception to throw instead, or null to let
    /// the server's own error through (the statement's, such as a division by zero at some row). Rows already reached the
    /// caller, so nothing is retried: the caller's cancellation stays a cancellation; a hung server (the watch broke the
    /// connection) or a lost connection is an <see cref="EfReplicaFailoverException"/> (not applied, read wording, event
    /// 1008) that says how many rows the caller had, and the failure policy applies to the server as for any read.
    /// </summary>
    internal Exception? ResultFailed(in ReadResultSource source, OperationWatch watch, WatchVerdict verdict, Exception exception, long rows)
    {
        if (verdict == WatchVerdict.Cancelled)
        {
            return watch.Failure(exception);
        }

        if (verdict == WatchVerdict.None && source.CancellationToken.IsCancellationRequested)
        {
            return new OperationCanceledException("The read was cancelled.", exception, source.CancellationToken);
        }

        var kind = verdict == WatchVerdict.Unresponsive
            ? ServerErrorKind.Unresponsive
            : FailoverErrors.Classify(exception, FailurePhase.Executing, onStandby: source.Replica is not null, source.Connection);
        if (kind == ServerErrorKind.None)
        {
            return null;
        }

        var inner = verdict == WatchVerdict.Unresponsive ? watch.Failure(exception) : exception;
        var name = FailoverErrors.GetName(kind);
        Log.ReadFailedMidResult(_logger, inner, _cluster, source.Server.Subject, source.CommandId, rows, name);
        var rule = FailurePolicy.For(kind);
        _selector.Membership.RequestRefresh(); // the cluster may have changed: the topology source looks again now
        if (source.Replica is { } replica)
        {
            _metrics.ReplicaError(_cluster, replica.Name, name);
            if (rule.ClearsReplicaPool)
            {
                replica.DataSource.Clear();
            }

            if (rule.ReplicaLeavesRotation && replica.ReportFailure())
            {
                Log.ReplicaLeftRotation(_topologyLogger, replica.Name, _cluster, $"a read failed on it while its result was read ({name})");
            }
        }
        else if (rule.ClearsPrimaryPool)
        {
            source.Server.DataSource.Clear();
        }

        var why = kind == ServerErrorKind.Unresponsive
            ? $"{source.Server.Subject} answered nothing within the read deadline (Failover:ReadDeadline), so its connection was closed"
            : $"the connection to {source.Server.Subject} was lost";
        return new EfReplicaFailoverException(
            FailoverOutcome.NotApplied,
            $"Failover in cluster '{_cluster}' ({name}): the read failed after {rows} row(s) of its result had been read: {why}. " +
            "Those rows were already returned, so the read was not retried elsewhere. A read changes nothing: it is safe to run it again.",
            inner);
    }
}
