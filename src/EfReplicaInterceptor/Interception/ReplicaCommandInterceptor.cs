using System.Data.Common;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Routing;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace EfReplicaInterceptor.Interception;

/// <summary>
/// Decides the target of every command EF executes. Writes, locking reads, session statements, transactions and pinned
/// sessions are left to EF, on EF's own connection (the primary), as if the interceptor were not there; a failover error
/// there becomes an <see cref="EfReplicaFailoverException"/>. Every other read is run by the library on a connection from
/// the chosen server's data source, with bounded retries, and EF is handed its result (<c>SuppressWithResult</c>), so EF's
/// connection (and anything the application does with it) always stays on the primary.
/// </summary>
internal sealed class ReplicaCommandInterceptor(RouterResolver routers) : DbCommandInterceptor
{
    public override InterceptionResult<DbDataReader> ReaderExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result)
        => Route(command, eventData, result, ReaderOperation.Instance, async: false, default).GetAwaiter().GetResult();

    public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
        => Route(command, eventData, result, ReaderOperation.Instance, async: true, cancellationToken);

    public override InterceptionResult<object> ScalarExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<object> result)
        => Route(command, eventData, result, ScalarOperation.Instance, async: false, default).GetAwaiter().GetResult();

    public override ValueTask<InterceptionResult<object>> ScalarExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<object> result, CancellationToken cancellationToken = default)
        => Route(command, eventData, result, ScalarOperation.Instance, async: true, cancellationToken);

    public override InterceptionResult<int> NonQueryExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<int> result)
        => Route(command, eventData, result, NonQueryOperation.Instance, async: false, default).GetAwaiter().GetResult();

    public override ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
        => Route(command, eventData, result, NonQueryOperation.Instance, async: true, cancellationToken);

    // A write finished: its scopes record it again (see CommandRouter.WriteCompleted).
    public override InterceptionResult DataReaderDisposing(DbCommand command, DataReaderDisposingEventData eventData, InterceptionResult result)
    {
        WriteCompleted(command, eventData);
        return result;
    }

    public override int NonQueryExecuted(DbCommand command, CommandExecutedEventData eventData, int result)
    {
        WriteCompleted(command, eventData);
        return result;
    }

    public override ValueTask<int> NonQueryExecutedAsync(DbCommand command, CommandExecutedEventData eventData, int result, CancellationToken cancellationToken = default)
    {
        WriteCompleted(command, eventData);
        return ValueTask.FromResult(result);
    }

    public override object? ScalarExecuted(DbCommand command, CommandExecutedEventData eventData, object? result)
    {
        WriteCompleted(command, eventData);
        return result;
    }

    public override ValueTask<object?> ScalarExecutedAsync(DbCommand command, CommandExecutedEventData eventData, object? result, CancellationToken cancellationToken = default)
    {
        WriteCompleted(command, eventData);
        return ValueTask.FromResult(result);
    }

    // A command EF ran on its own connection (a write, a transaction, a pinned session) failed over: a typed outcome, no retry.
    public override void CommandFailed(DbCommand command, CommandErrorEventData eventData) => ThrowIfFailover(command, eventData);

    public override Task CommandFailedAsync(DbCommand command, CommandErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        ThrowIfFailover(command, eventData);
        return Task.CompletedTask;
    }

    private void WriteCompleted(DbCommand command, DbContextEventData eventData)
    {
        if (eventData.Context is { } context && routers.Find(context) is { } router)
        {
            router.EfCommands.Stop(command);
            router.WriteCompleted(routers.States.Find(context), committed: false);
        }
    }

    private void ThrowIfFailover(DbCommand command, CommandErrorEventData eventData)
    {
        var inTransaction = command.Transaction is not null || System.Transactions.Transaction.Current is not null;
        var router = routers.Find(eventData.Context);
        var error = router?.EfCommands.Stop(command) == true ? EfCommandWatchdog.Unresponsive(eventData.Exception) : eventData.Exception;
        if (router?.Failures.Translate(error, FailurePhase.Executing, inTransaction, isCommit: false, command.Connection) is { } failover)
        {
            throw routers.Failed(eventData.Context, failover);
        }
    }

    private ValueTask<InterceptionResult<T>> Route<T>(
        DbCommand command, CommandEventData eventData, InterceptionResult<T> result, ReadOperation<T> operation, bool async, CancellationToken cancellationToken)
    {
        var router = routers.Require(eventData.Context, command.Connection);
        return router.RouteAsync(command, eventData, routers.Lease(eventData.Context), result, operation, async, cancellationToken);
    }
}
