using EfReplicaInterceptor.Routing;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace EfReplicaInterceptor.Interception;

/// <summary>
/// SaveChanges wraps a failed batch in a <c>DbUpdateException</c>: when the cause was a failover, the caller gets the typed
/// <see cref="EfReplicaFailoverException"/> itself instead, as from every other operation.
/// </summary>
internal sealed class ReplicaSaveChangesInterceptor : SaveChangesInterceptor
{
    public override void SaveChangesFailed(DbContextErrorEventData eventData) => ThrowFailover(eventData);

    public override Task SaveChangesFailedAsync(DbContextErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        ThrowFailover(eventData);
        return Task.CompletedTask;
    }

    private static void ThrowFailover(DbContextErrorEventData eventData)
    {
        if (eventData.Exception is not EfReplicaFailoverException && EfReplicaFailoverException.Find(eventData.Exception) is { } failover)
        {
            throw failover;
        }
    }
}
