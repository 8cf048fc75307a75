using System.Data.Common;
using EfReplicaInterceptor.Failover;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace EfReplicaInterceptor.Interception;

/// <summary>
/// Guards EF's connection before it opens (a tenant context must be bound, and its connection must be the one bound to its
/// lease), defers the open when EF opens it only for a reader, turns a failed open into a typed <see cref="EfReplicaFailoverException"/> (not applied), and ends a session pin
/// when EF's connection closes: temp tables, <c>SET</c> and advisory locks live as long as the session, so reads stay with the
/// primary session only while the connection that ran them stays open.
/// </summary>
internal sealed class ReplicaConnectionInterceptor(RouterResolver routers) : DbConnectionInterceptor
{
    public override InterceptionResult<DbConnection> ConnectionCreating(ConnectionCreatingEventData eventData, InterceptionResult<DbConnection> result)
        => routers.ConnectionCreating(eventData, result);

    public override InterceptionResult ConnectionOpening(DbConnection connection, ConnectionEventData eventData, InterceptionResult result)
        => Opening(connection, eventData, result);

    public override ValueTask<InterceptionResult> ConnectionOpeningAsync(DbConnection connection, ConnectionEventData eventData, InterceptionResult result, CancellationToken cancellationToken = default)
        => ValueTask.FromResult(Opening(connection, eventData, result));

    /// <summary>
    /// EF opening its connection only to run a reader (see <see cref="ReaderOpening"/>) is deferred: the connection stays
    /// closed while EF counts it as open, and is opened by the command router only if the reader turns out to need the
    /// primary. A read served by a replica then holds no primary connection and works with the primary down. Any other open
    /// (the application's <c>Database.OpenConnection()</c>, a transaction, a non-query) is a real one, as is an open under an
    /// ambient <c>TransactionScope</c>, which EF enlists the connection in at once.
    /// </summary>
    private InterceptionResult Opening(DbConnection connection, ConnectionEventData eventData, InterceptionResult result)
    {
        routers.Require(eventData.Context, connection);
        if (ReaderOpening.Take(eventData.Context)
            && !result.IsSuppressed
            && connection.State == System.Data.ConnectionState.Closed
            && System.Transactions.Transaction.Current is null
            && routers.Lease(eventData.Context) is not null)
        {
            return InterceptionResult.Suppress();
        }

        return result;
    }

    // EF could not open its (primary) connection: nothing was sent, whatever the command was going to be.
    public override void ConnectionFailed(DbConnection connection, ConnectionErrorEventData eventData) => ThrowIfFailover(connection, eventData);

    public override Task ConnectionFailedAsync(DbConnection connection, ConnectionErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        ThrowIfFailover(connection, eventData);
        return Task.CompletedTask;
    }

    private void ThrowIfFailover(DbConnection connection, ConnectionErrorEventData eventData)
    {
        if (routers.Find(eventData.Context)?.Failures.Translate(eventData.Exception, FailurePhase.Opening, inOpenTransaction: false, isCommit: false, connection) is { } failover)
        {
            throw routers.Failed(eventData.Context, failover);
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
        if (eventData.Context is { } context && routers.States.Find(context) is { } lease)
        {
            lease.SessionEnded();
        }
    }
}
