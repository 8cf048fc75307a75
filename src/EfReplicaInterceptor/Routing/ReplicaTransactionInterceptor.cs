using System.Data.Common;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace EfReplicaInterceptor.Routing;

/// <summary>
/// Records a committed transaction's writes again at commit, so that read-your-writes captures a WAL position at or after
/// the COMMIT (writes inside a transaction become visible only then).
/// </summary>
internal sealed class ReplicaTransactionInterceptor(CommandRouter router) : DbTransactionInterceptor
{
    public override void TransactionCommitted(DbTransaction transaction, TransactionEndEventData eventData)
        => router.WriteCompleted(eventData.Context, committed: true);

    public override Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        router.WriteCompleted(eventData.Context, committed: true);
        return Task.CompletedTask;
    }
}
