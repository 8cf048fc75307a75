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
/// <param name="primaryTypes">What the primary's data source knows of its hosts' types; null: not checked.</param>
/// <param name="clearPrimary">Empties the primary data source's pools (<see cref="NpgsqlConnection.ClearPool"/> does not reach a data source's); null: nothing.</param>
internal sealed class WriteFailureTranslator(
    string cluster, bool shadow, ILoggerFactory loggerFactory, Action? onFailover = null, PrimaryTypeCatalog? primaryTypes = null, Action? clearPrimary = null)
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

        if (primaryTypes is not null && connection is NpgsqlConnection pooled && PrimaryTypeCatalog.IsUnknownTypeError(exception) && primaryTypes.MayLackTypes(pooled))
        {
            // A session pooled before its host became the primary, with the types Npgsql loaded then: nothing was sent. The
            // pools are emptied so that the next session is a new one, which reloads the host's types (PrimaryTypeCatalog).
            // Inside a transaction the session stays with it, so the transaction has to run again, not the command.
            clearPrimary?.Invoke();
            Log.WriteFailedOver(_logger, cluster, "stale types", "not-applied");
            var retry = inOpenTransaction
                ? "Run the whole transaction again (SaveChanges: call it again): its session keeps the old types until the transaction ends."
                : "It is safe to retry.";
            return new EfReplicaFailoverException(
                FailoverOutcome.NotApplied,
                $"Failover in cluster '{cluster}' (stale types): the command was not sent: its session to the new primary had the database types Npgsql loaded before that server was promoted, and lacked one the command names; the types are reloaded with the next session. {retry}",
                exception);
        }

        var kind = FailoverErrors.Classify(exception, phase, onStandby: false, connection);
        if (kind == ServerErrorKind.None)
        {
            return null;
        }

        onFailover?.Invoke(); // the primary may have moved
        if (FailurePolicy.For(kind).ClearsPrimaryPool && connection is NpgsqlConnection npgsql)
        {
            NpgsqlConnection.ClearPool(npgsql); // a pool built from EF's connection string
            clearPrimary?.Invoke(); // the cluster's primary data source, which ClearPool does not reach
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
