using System.Data.Common;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Npgsql;

namespace EfReplicaInterceptor.Routing;

/// <summary>
/// Decides the target of every command EF executes. A command for the primary is left to EF, on EF's own connection, as if
/// the interceptor were not there. A command for a replica is run on a replica connection and EF is handed its result
/// (<c>SuppressWithResult</c>), so EF's connection (and anything the application does with it) always stays on the primary.
/// </summary>
internal sealed class ReplicaCommandInterceptor(CommandRouter router) : DbCommandInterceptor
{
    private static readonly Func<NpgsqlCommand, DbDataReader> ExecuteReader = static command => command.ExecuteReader();
    // ExecuteScalar returns null for an empty result; EF's InterceptionResult<object> carries that null as well.
    private static readonly Func<NpgsqlCommand, object> ExecuteScalar = static command => command.ExecuteScalar()!;
    private static readonly Func<NpgsqlCommand, int> ExecuteNonQuery = static command => command.ExecuteNonQuery();
    private static readonly Func<NpgsqlCommand, CancellationToken, Task<DbDataReader>> ExecuteReaderAsync =
        static async (command, cancellationToken) => await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
    private static readonly Func<NpgsqlCommand, CancellationToken, Task<object>> ExecuteScalarAsync =
        static async (command, cancellationToken) => (await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    private static readonly Func<NpgsqlCommand, CancellationToken, Task<int>> ExecuteNonQueryAsync =
        static (command, cancellationToken) => command.ExecuteNonQueryAsync(cancellationToken);

    public override InterceptionResult<DbDataReader> ReaderExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result)
        => Route(command, eventData, result, ExecuteReader);

    public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
        => RouteAsync(command, eventData, result, ExecuteReaderAsync, cancellationToken);

    public override InterceptionResult<object> ScalarExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<object> result)
        => Route(command, eventData, result, ExecuteScalar);

    public override ValueTask<InterceptionResult<object>> ScalarExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<object> result, CancellationToken cancellationToken = default)
        => RouteAsync(command, eventData, result, ExecuteScalarAsync, cancellationToken);

    public override InterceptionResult<int> NonQueryExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<int> result)
        => Route(command, eventData, result, ExecuteNonQuery);

    public override ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
        => RouteAsync(command, eventData, result, ExecuteNonQueryAsync, cancellationToken);

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

    private InterceptionResult<T> Route<T>(DbCommand command, CommandEventData eventData, InterceptionResult<T> result, Func<NpgsqlCommand, T> execute)
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

        if (decision.Replica is null || router.IsShadowMode)
        {
            router.ReportPrimary(eventData, decision);
            return result;
        }

        return router.TryExecuteOnReplica(command, eventData, decision.Replica, execute, out var value)
            ? InterceptionResult<T>.SuppressWithResult(value)
            : result;
    }

    private async ValueTask<InterceptionResult<T>> RouteAsync<T>(
        DbCommand command,
        CommandEventData eventData,
        InterceptionResult<T> result,
        Func<NpgsqlCommand, CancellationToken, Task<T>> execute,
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

        if (decision.Replica is null || router.IsShadowMode)
        {
            router.ReportPrimary(eventData, decision);
            return result;
        }

        var outcome = await router.TryExecuteOnReplicaAsync(command, eventData, decision.Replica, execute, cancellationToken).ConfigureAwait(false);
        return outcome.Executed ? InterceptionResult<T>.SuppressWithResult(outcome.Value) : result;
    }
}
