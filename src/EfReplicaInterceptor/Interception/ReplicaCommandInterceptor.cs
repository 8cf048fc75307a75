using EfReplicaInterceptor.Routing;
using System.Data.Common;
using Microsoft.EntityFrameworkCore.Diagnostics;
using EfReplicaInterceptor.Failover;
using Npgsql;

namespace EfReplicaInterceptor.Interception;

/// <summary>
/// Decides the target of every command EF executes. Writes, locking reads, session statements, transactions and pinned
/// sessions are left to EF, on EF's own connection (the primary), as if the interceptor were not there; a failover error
/// there becomes an <see cref="EfReplicaFailoverException"/>. Every other read is run by the library on a connection from
/// the chosen server's data source, with bounded retries, and EF is handed its result (<c>SuppressWithResult</c>), so EF's
/// connection (and anything the application does with it) always stays on the primary.
/// </summary>
internal sealed class ReplicaCommandInterceptor(CommandRouter router, ReadExecutor reads, WriteFailureTranslator failures) : DbCommandInterceptor
{
    public override InterceptionResult<DbDataReader> ReaderExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result)
        => Route(command, eventData, result, ReaderOperation.Instance);

    public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
        => RouteAsync(command, eventData, result, ReaderOperation.Instance, cancellationToken);

    public override InterceptionResult<object> ScalarExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<object> result)
        => Route(command, eventData, result, ScalarOperation.Instance);

    public override ValueTask<InterceptionResult<object>> ScalarExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<object> result, CancellationToken cancellationToken = default)
        => RouteAsync(command, eventData, result, ScalarOperation.Instance, cancellationToken);

    public override InterceptionResult<int> NonQueryExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<int> result)
        => Route(command, eventData, result, NonQueryOperation.Instance);

    public override ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
        => RouteAsync(command, eventData, result, NonQueryOperation.Instance, cancellationToken);

    // A write finished: its scopes record it again (see CommandRouter.WriteCompleted).
    public override InterceptionResult DataReaderDisposing(DbCommand command, DataReaderDisposingEventData eventData, InterceptionResult result)
    {
        router.WriteCompleted(eventData.Context, committed: false);
        return result;
    }

    public override int NonQueryExecuted(DbCommand command, CommandExecutedEventData eventData, int result)
    {
        router.WriteCompleted(eventData.Context, committed: false);
        return result;
    }

    public override ValueTask<int> NonQueryExecutedAsync(DbCommand command, CommandExecutedEventData eventData, int result, CancellationToken cancellationToken = default)
    {
        router.WriteCompleted(eventData.Context, committed: false);
        return ValueTask.FromResult(result);
    }

    public override object? ScalarExecuted(DbCommand command, CommandExecutedEventData eventData, object? result)
    {
        router.WriteCompleted(eventData.Context, committed: false);
        return result;
    }

    public override ValueTask<object?> ScalarExecutedAsync(DbCommand command, CommandExecutedEventData eventData, object? result, CancellationToken cancellationToken = default)
    {
        router.WriteCompleted(eventData.Context, committed: false);
        return ValueTask.FromResult(result);
    }

    // A command EF ran on its own connection (a write, a transaction, a pinned session) failed over: a typed outcome, no retry.
    public override void CommandFailed(DbCommand command, CommandErrorEventData eventData) => ThrowIfFailover(command, eventData);

    public override Task CommandFailedAsync(DbCommand command, CommandErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        ThrowIfFailover(command, eventData);
        return Task.CompletedTask;
    }

    private void ThrowIfFailover(DbCommand command, CommandErrorEventData eventData)
    {
        var inTransaction = command.Transaction is not null || System.Transactions.Transaction.Current is not null;
        if (failures.Translate(eventData.Exception, FailurePhase.Executing, inTransaction, isCommit: false, command.Connection) is { } failover)
        {
            throw failover;
        }
    }

    private InterceptionResult<T> Route<T>(DbCommand command, CommandEventData eventData, InterceptionResult<T> result, ReadOperation<T> operation)
    {
        if (result.HasResult)
        {
            return result; // another interceptor already answered
        }

        var decision = router.Decide(command, eventData);
        if (decision.NeedsCatchUp)
        {
            // async: false runs every step synchronously; the ValueTask is complete when it returns.
            decision = router.ResolveCatchUpAsync(decision, async: false, CancellationToken.None).GetAwaiter().GetResult();
        }

        if (router.IsShadowMode || !CommandRouter.RunsAsRetryableRead(decision))
        {
            router.ReportPrimary(eventData, decision);
            return result; // EF runs it on its own connection
        }

        return InterceptionResult<T>.SuppressWithResult(reads.Execute((NpgsqlCommand)command, eventData, decision, operation));
    }

    private async ValueTask<InterceptionResult<T>> RouteAsync<T>(
        DbCommand command,
        CommandEventData eventData,
        InterceptionResult<T> result,
        ReadOperation<T> operation,
        CancellationToken cancellationToken)
    {
        if (result.HasResult)
        {
            return result;
        }

        var decision = router.Decide(command, eventData);
        if (decision.NeedsCatchUp)
        {
            decision = await router.ResolveCatchUpAsync(decision, async: true, cancellationToken).ConfigureAwait(false);
        }

        if (router.IsShadowMode || !CommandRouter.RunsAsRetryableRead(decision))
        {
            router.ReportPrimary(eventData, decision);
            return result;
        }

        var value = await reads.ExecuteAsync((NpgsqlCommand)command, eventData, decision, operation, async: true, cancellationToken).ConfigureAwait(false);
        return InterceptionResult<T>.SuppressWithResult(value);
    }
}
