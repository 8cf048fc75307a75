using System.Data.Common;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace EfReplicaInterceptor.Routing;

/// <summary>
/// Ends a session pin when EF's connection closes: temp tables, <c>SET</c> and advisory locks live as long as the session,
/// so reads stay with the primary session only while the connection that ran them stays open.
/// </summary>
internal sealed class ReplicaConnectionInterceptor(ContextRoutingStates states) : DbConnectionInterceptor
{
    public override void ConnectionClosed(DbConnection connection, ConnectionEndEventData eventData) => Unpin(eventData);

    public override Task ConnectionClosedAsync(DbConnection connection, ConnectionEndEventData eventData)
    {
        Unpin(eventData);
        return Task.CompletedTask;
    }

    private void Unpin(ConnectionEndEventData eventData)
    {
        if (eventData.Context is { } context)
        {
            states.Get(context).SessionPinned = false;
        }
    }
}
