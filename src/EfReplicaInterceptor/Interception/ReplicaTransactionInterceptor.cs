using EfReplicaInterceptor.Routing;
using System.Data.Common;
using EfReplicaInterceptor.Failover;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace EfReplicaInterceptor.Interception;

/// <summary>
/// Records a committed transaction's writes again at commit, so that read-your-writes captures a WAL position at or after
/// the COMMIT (writes inside a transaction become visible only then).
/// </summary>
internal sealed class ReplicaTransactionInterceptor(RouterResolver routers) : DbTransactionInterceptor
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
        if (routers.Find(eventData.Context)?.Failures.Translate(eventData.Exception, phase, inOpenTransaction: !isCommit, isCommit, transaction.Connection) is { } failover)
        {
            throw routers.Failed(eventData.Context, failover);
        }
    }

    public override void TransactionCommitted(DbTransaction transaction, TransactionEndEventData eventData) => Committed(eventData);

    public override Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        Committed(eventData);
        return Task.CompletedTask;
    }

    private void Committed(TransactionEndEventData eventData)
    {
        if (eventData.Context is { } context && routers.Find(context) is { } router)
        {
            router.WriteCompleted(routers.States.Find(context), committed: true);
        }
    }
}
