using System.Data.Common;
using EfReplicaInterceptor.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EfReplicaInterceptor.Failover;

/// <summary>
/// Turns a failover error on EF's own (primary) connection into an <see cref="EfReplicaFailoverException"/> that says
/// whether the command was certainly not applied or its outcome is unknown, and clears that connection's pool so stale
/// connections do not linger. Nothing is retried here. Other errors are left alone.
/// </summary>
/// <param name="cluster">The cluster's name, for messages and logs.</param>
/// <param name="shadow">Shadow mode: nothing is translated.</param>
/// <param name="loggerFactory">Where events go.</param>
/// <param name="onFailover">Called for every failover error translated (the topology source looks again at once); null: nothing.</param>
internal sealed class WriteFailureTranslator(string cluster, bool shadow, ILoggerFactory loggerFactory, Action? onFailover = null)
{
    private readonly ILogger _logger = loggerFactory.CreateLogger(Log.RoutingCategory);

    /// <param name="exception">The error EF is about to throw.</param>
    /// <param name="phase">Opening the connection, or running a command.</param>
    /// <param name="inOpenTransaction">The command ran inside a transaction that had not been committed (the server rolls it back when the session dies).</param>
    /// <param name="isCommit">The failure is the COMMIT's.</param>
    /// <param name="connection">EF's connection: broken after an error that carries no word from the server, its session died; its pool is cleared when the policy says so.</param>
    public EfReplicaFailoverException? Translate(Exception exception, FailurePhase phase, bool inOpenTransaction, bool isCommit, DbConnection? connection)
    {
        if (shadow || exception is EfReplicaFailoverException)
        {
            return null;
        }

        var kind = FailoverErrors.Classify(exception, phase, onStandby: false, connection);
        if (kind == ServerErrorKind.None)
        {
            return null;
        }

        onFailover?.Invoke(); // the primary may have moved
        if (FailurePolicy.For(kind).ClearsPrimaryPool && connection is NpgsqlConnection npgsql)
        {
            NpgsqlConnection.ClearPool(npgsql);
        }

        var (outcome, message) = FailurePolicy.WriteOutcome(kind, phase, inOpenTransaction, isCommit);
        var outcomeName = outcome == FailoverOutcome.NotApplied ? "not-applied" : "unknown";
        Log.WriteFailedOver(_logger, cluster, FailoverErrors.GetName(kind), outcomeName);
        var advice = outcome == FailoverOutcome.NotApplied
            ? "It is safe to retry."
            : "Check whether it was applied before retrying, or make the unit of work idempotent and run it with EfReplicaCluster.ExecuteIdempotentAsync.";
        return new EfReplicaFailoverException(outcome, $"Failover in cluster '{cluster}' ({FailoverErrors.GetName(kind)}): {message}. {advice}", exception);
    }
}
