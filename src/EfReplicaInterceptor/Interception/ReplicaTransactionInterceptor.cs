using EfReplicaInterceptor.Routing;
using System.Data.Common;
using EfReplicaInterceptor.Failover;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace EfReplicaInterceptor.Interception;

/// <summary>
/// Records a committed transaction's writes again at commit, so that read-your-writes captures a WAL position at or after
/// the COMMIT (writes inside a transaction become visible only then).
/// </summary>
internal sealed class ReplicaTransactionInterceptor(CommandRouter router, WriteFailureTranslator failures) : DbTransactionInterceptor
{
    // A COMMIT that failed over has an unknown outcome; other transaction operations that failed over were not applied.
    public override void TransactionFailed(DbTransaction transaction, TransactionErrorEventData eventData) => ThrowIfFailover(transaction, eventData);

    public override Task TransactionFailedAsync(DbTransaction transaction, TransactionErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        ThrowIfFailover(transaction, eventData);
        return Task.CompletedTask;
    }

    private void ThrowIfFailover(DbTransaction transaction, TransactionErrorEventData eventData)
    {
        if (eventData.Action is not ("Commit" or "Start"))
        {
            return; // a failed rollback or savepoint: the transaction is gone either way; EF reports it
        }

        var isCommit = eventData.Action == "Commit";
        var phase = isCommit ? FailurePhase.Executing : FailurePhase.Opening;
        if (failures.Translate(eventData.Exception, phase, inOpenTransaction: !isCommit, isCommit, transaction.Connection) is { } failover)
        {
            throw failover;
        }
    }

    public override void TransactionCommitted(DbTransaction transaction, TransactionEndEventData eventData)
        => router.WriteCompleted(eventData.Context, committed: true);

    public override Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        router.WriteCompleted(eventData.Context, committed: true);
        return Task.CompletedTask;
    }
}
