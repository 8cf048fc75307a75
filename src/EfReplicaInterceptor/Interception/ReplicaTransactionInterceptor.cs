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

    // The COMMIT runs under the library's deadline, as EF's commands do (a hung primary would hold it forever).
    public override InterceptionResult TransactionCommitting(DbTransaction transaction, TransactionEventData eventData, InterceptionResult result)
    {
        routers.Find(eventData.Context)?.EfCommands.Start(transaction);
        return result;
    }

    public override ValueTask<InterceptionResult> TransactionCommittingAsync(DbTransaction transaction, TransactionEventData eventData, InterceptionResult result, CancellationToken cancellationToken = default)
    {
        routers.Find(eventData.Context)?.EfCommands.Start(transaction);
        return ValueTask.FromResult(result);
    }

    private void ThrowIfFailover(DbTransaction transaction, TransactionErrorEventData eventData)
    {
        var router = routers.Find(eventData.Context);
        var error = router?.EfCommands.Stop(transaction) == true ? EfCommandWatchdog.Unresponsive(eventData.Exception) : eventData.Exception;
        if (eventData.Action is not ("Commit" or "Start"))
        {
            return; // a failed rollback or savepoint: the transaction is gone either way; EF reports it
        }

        var isCommit = eventData.Action == "Commit";
        var phase = isCommit ? FailurePhase.Executing : FailurePhase.Opening;
        if (router?.Failures.Translate(error, phase, inOpenTransaction: !isCommit, isCommit, transaction.Connection) is { } failover)
        {
            throw routers.Failed(eventData.Context, failover);
        }
    }

    public override void TransactionCommitted(DbTransaction transaction, TransactionEndEventData eventData) => Committed(transaction, eventData);

    public override Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        Committed(transaction, eventData);
        return Task.CompletedTask;
    }

    private void Committed(DbTransaction transaction, TransactionEndEventData eventData)
    {
        if (eventData.Context is { } context && routers.Find(context) is { } router)
        {
            router.EfCommands.Stop(transaction);
            router.WriteCompleted(routers.States.Find(context), committed: true);
        }
    }
}
