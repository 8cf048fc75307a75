using EfReplicaInterceptor.Routing;
using System.Data.Common;
using EfReplicaInterceptor.Failover;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace EfReplicaInterceptor.Interception;

/// <summary>
/// Turns a failed open of EF's connection into a typed <see cref="EfReplicaFailoverException"/> (not applied), and ends a session pin when EF's connection closes: temp tables, <c>SET</c> and advisory locks live as long as the session,
/// so reads stay with the primary session only while the connection that ran them stays open.
/// </summary>
internal sealed class ReplicaConnectionInterceptor(ContextRoutingStates states, WriteFailureTranslator failures) : DbConnectionInterceptor
{
    // EF could not open its (primary) connection: nothing was sent, whatever the command was going to be.
    public override void ConnectionFailed(DbConnection connection, ConnectionErrorEventData eventData) => ThrowIfFailover(connection, eventData);

    public override Task ConnectionFailedAsync(DbConnection connection, ConnectionErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        ThrowIfFailover(connection, eventData);
        return Task.CompletedTask;
    }

    private void ThrowIfFailover(DbConnection connection, ConnectionErrorEventData eventData)
    {
        if (failures.Translate(eventData.Exception, FailurePhase.Opening, inOpenTransaction: false, isCommit: false, connection) is { } failover)
        {
            throw failover;
        }
    }

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
