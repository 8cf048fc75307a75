using EfReplicaInterceptor.Diagnostics;
using System.Data.Common;
using System.Runtime.CompilerServices;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.Extensions.Logging;

namespace EfReplicaInterceptor.Clusters;

/// <summary>
/// The one interceptor of tenant DbContexts (whose options, pooled, cannot change per lease). For each callback it finds the
/// tenant the context's current lease is bound to and forwards to that tenant's cluster interceptors, so routing runs within
/// the tenant's cluster with that cluster's per-context state.
/// </summary>
/// <remarks>
/// It is also the isolation guard: before a connection opens and before a command executes, the lease must be bound to a
/// tenant and EF's connection must be the very connection bound for that lease (created from the tenant's primary data
/// source). Otherwise it throws <see cref="EfReplicaTenantException"/>, so nothing is sent anywhere. EF never creates a
/// connection for a tenant context: a request to create one means the lease has none bound, and is refused the same way.
/// </remarks>
internal sealed class TenantDispatchInterceptor(ILogger logger) : IDbCommandInterceptor, IDbConnectionInterceptor, IDbTransactionInterceptor, ISaveChangesInterceptor
{
    private readonly ConditionalWeakTable<DbContext, TenantLeaseState> _states = new();

    /// <summary>Binds <paramref name="context"/>'s current lease to <paramref name="entry"/> (acquired for it).</summary>
    public TenantLease Bind(DbContext context, TenantClusterEntry entry)
    {
        TenantLeaseState state;
        try
        {
            state = _states.GetValue(context, static context => context.GetService<TenantLeaseState>());
        }
        catch
        {
            entry.Owner.Release(entry, lease: null);
            throw;
        }

        return state.Bind(context, entry);
    }

    /// <summary>The tenant bound to the current lease of <paramref name="context"/>, if any.</summary>
    public TenantClusterEntry? Find(DbContext? context)
        => context is not null && _states.TryGetValue(context, out var state) ? state.Current(context)?.Entry : null;

    private TenantClusterEntry Require(DbContext? context, DbConnection? connection)
    {
        try
        {
            if (context is null || !_states.TryGetValue(context, out var state))
            {
                throw EfReplicaTenantException.NotBound();
            }

            return state.Require(context, connection).Entry;
        }
        catch (EfReplicaTenantException exception)
        {
            Log.TenantIsolationViolation(logger, exception.TenantId ?? "(none)", exception.Message);
            throw;
        }
    }

    private IDbCommandInterceptor[] Commands(DbContext? context) => Find(context)?.Commands ?? [];

    private IDbConnectionInterceptor[] Connections(DbContext? context) => Find(context)?.Connections ?? [];

    private IDbTransactionInterceptor[] Transactions(DbContext? context) => Find(context)?.Transactions ?? [];

    private ISaveChangesInterceptor[] SaveChanges(DbContext? context) => Find(context)?.SaveChanges ?? [];

    // ---- Commands: executing is guarded; the rest is forwarded when the lease is bound.

    public InterceptionResult<DbDataReader> ReaderExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result)
    {
        foreach (var interceptor in Require(eventData.Context, command.Connection).Commands)
        {
            result = interceptor.ReaderExecuting(command, eventData, result);
        }

        return result;
    }

    public async ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Require(eventData.Context, command.Connection).Commands)
        {
            result = await interceptor.ReaderExecutingAsync(command, eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    public InterceptionResult<object> ScalarExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<object> result)
    {
        foreach (var interceptor in Require(eventData.Context, command.Connection).Commands)
        {
            result = interceptor.ScalarExecuting(command, eventData, result);
        }

        return result;
    }

    public async ValueTask<InterceptionResult<object>> ScalarExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<object> result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Require(eventData.Context, command.Connection).Commands)
        {
            result = await interceptor.ScalarExecutingAsync(command, eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    public InterceptionResult<int> NonQueryExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<int> result)
    {
        foreach (var interceptor in Require(eventData.Context, command.Connection).Commands)
        {
            result = interceptor.NonQueryExecuting(command, eventData, result);
        }

        return result;
    }

    public async ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Require(eventData.Context, command.Connection).Commands)
        {
            result = await interceptor.NonQueryExecutingAsync(command, eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    public InterceptionResult<DbCommand> CommandCreating(CommandCorrelatedEventData eventData, InterceptionResult<DbCommand> result)
    {
        foreach (var interceptor in Commands(eventData.Context))
        {
            result = interceptor.CommandCreating(eventData, result);
        }

        return result;
    }

    public DbCommand CommandCreated(CommandEndEventData eventData, DbCommand result)
    {
        foreach (var interceptor in Commands(eventData.Context))
        {
            result = interceptor.CommandCreated(eventData, result);
        }

        return result;
    }

    public DbCommand CommandInitialized(CommandEndEventData eventData, DbCommand result)
    {
        foreach (var interceptor in Commands(eventData.Context))
        {
            result = interceptor.CommandInitialized(eventData, result);
        }

        return result;
    }

    public DbDataReader ReaderExecuted(DbCommand command, CommandExecutedEventData eventData, DbDataReader result)
    {
        foreach (var interceptor in Commands(eventData.Context))
        {
            result = interceptor.ReaderExecuted(command, eventData, result);
        }

        return result;
    }

    public async ValueTask<DbDataReader> ReaderExecutedAsync(
        DbCommand command, CommandExecutedEventData eventData, DbDataReader result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Commands(eventData.Context))
        {
            result = await interceptor.ReaderExecutedAsync(command, eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    public object? ScalarExecuted(DbCommand command, CommandExecutedEventData eventData, object? result)
    {
        foreach (var interceptor in Commands(eventData.Context))
        {
            result = interceptor.ScalarExecuted(command, eventData, result);
        }

        return result;
    }

    public async ValueTask<object?> ScalarExecutedAsync(
        DbCommand command, CommandExecutedEventData eventData, object? result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Commands(eventData.Context))
        {
            result = await interceptor.ScalarExecutedAsync(command, eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    public int NonQueryExecuted(DbCommand command, CommandExecutedEventData eventData, int result)
    {
        foreach (var interceptor in Commands(eventData.Context))
        {
            result = interceptor.NonQueryExecuted(command, eventData, result);
        }

        return result;
    }

    public async ValueTask<int> NonQueryExecutedAsync(
        DbCommand command, CommandExecutedEventData eventData, int result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Commands(eventData.Context))
        {
            result = await interceptor.NonQueryExecutedAsync(command, eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    public void CommandCanceled(DbCommand command, CommandEndEventData eventData)
    {
        foreach (var interceptor in Commands(eventData.Context))
        {
            interceptor.CommandCanceled(command, eventData);
        }
    }

    public async Task CommandCanceledAsync(DbCommand command, CommandEndEventData eventData, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Commands(eventData.Context))
        {
            await interceptor.CommandCanceledAsync(command, eventData, cancellationToken).ConfigureAwait(false);
        }
    }

    public void CommandFailed(DbCommand command, CommandErrorEventData eventData)
    {
        foreach (var interceptor in Commands(eventData.Context))
        {
            interceptor.CommandFailed(command, eventData);
        }
    }

    public async Task CommandFailedAsync(DbCommand command, CommandErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Commands(eventData.Context))
        {
            await interceptor.CommandFailedAsync(command, eventData, cancellationToken).ConfigureAwait(false);
        }
    }

    public InterceptionResult DataReaderClosing(DbCommand command, DataReaderClosingEventData eventData, InterceptionResult result)
    {
        foreach (var interceptor in Commands(eventData.Context))
        {
            result = interceptor.DataReaderClosing(command, eventData, result);
        }

        return result;
    }

    public async ValueTask<InterceptionResult> DataReaderClosingAsync(DbCommand command, DataReaderClosingEventData eventData, InterceptionResult result)
    {
        foreach (var interceptor in Commands(eventData.Context))
        {
            result = await interceptor.DataReaderClosingAsync(command, eventData, result).ConfigureAwait(false);
        }

        return result;
    }

    public InterceptionResult DataReaderDisposing(DbCommand command, DataReaderDisposingEventData eventData, InterceptionResult result)
    {
        foreach (var interceptor in Commands(eventData.Context))
        {
            result = interceptor.DataReaderDisposing(command, eventData, result);
        }

        return result;
    }

    // ---- Connections: EF never creates one for a tenant context, and opening one is guarded.

    public InterceptionResult<DbConnection> ConnectionCreating(ConnectionCreatingEventData eventData, InterceptionResult<DbConnection> result)
    {
        var exception = Find(eventData.Context) is { } entry ? EfReplicaTenantException.ConnectionChanged(entry.TenantId) : EfReplicaTenantException.NotBound();
        Log.TenantIsolationViolation(logger, exception.TenantId ?? "(none)", exception.Message);
        throw exception;
    }

    public DbConnection ConnectionCreated(ConnectionCreatedEventData eventData, DbConnection result) => result;

    public InterceptionResult ConnectionOpening(DbConnection connection, ConnectionEventData eventData, InterceptionResult result)
    {
        foreach (var interceptor in Require(eventData.Context, connection).Connections)
        {
            result = interceptor.ConnectionOpening(connection, eventData, result);
        }

        return result;
    }

    public async ValueTask<InterceptionResult> ConnectionOpeningAsync(
        DbConnection connection, ConnectionEventData eventData, InterceptionResult result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Require(eventData.Context, connection).Connections)
        {
            result = await interceptor.ConnectionOpeningAsync(connection, eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    public void ConnectionOpened(DbConnection connection, ConnectionEndEventData eventData)
    {
        foreach (var interceptor in Connections(eventData.Context))
        {
            interceptor.ConnectionOpened(connection, eventData);
        }
    }

    public async Task ConnectionOpenedAsync(DbConnection connection, ConnectionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Connections(eventData.Context))
        {
            await interceptor.ConnectionOpenedAsync(connection, eventData, cancellationToken).ConfigureAwait(false);
        }
    }

    public InterceptionResult ConnectionClosing(DbConnection connection, ConnectionEventData eventData, InterceptionResult result)
    {
        foreach (var interceptor in Connections(eventData.Context))
        {
            result = interceptor.ConnectionClosing(connection, eventData, result);
        }

        return result;
    }

    public async ValueTask<InterceptionResult> ConnectionClosingAsync(DbConnection connection, ConnectionEventData eventData, InterceptionResult result)
    {
        foreach (var interceptor in Connections(eventData.Context))
        {
            result = await interceptor.ConnectionClosingAsync(connection, eventData, result).ConfigureAwait(false);
        }

        return result;
    }

    public void ConnectionClosed(DbConnection connection, ConnectionEndEventData eventData)
    {
        foreach (var interceptor in Connections(eventData.Context))
        {
            interceptor.ConnectionClosed(connection, eventData);
        }
    }

    public async Task ConnectionClosedAsync(DbConnection connection, ConnectionEndEventData eventData)
    {
        foreach (var interceptor in Connections(eventData.Context))
        {
            await interceptor.ConnectionClosedAsync(connection, eventData).ConfigureAwait(false);
        }
    }

    public InterceptionResult ConnectionDisposing(DbConnection connection, ConnectionEventData eventData, InterceptionResult result)
    {
        foreach (var interceptor in Connections(eventData.Context))
        {
            result = interceptor.ConnectionDisposing(connection, eventData, result);
        }

        return result;
    }

    public async ValueTask<InterceptionResult> ConnectionDisposingAsync(DbConnection connection, ConnectionEventData eventData, InterceptionResult result)
    {
        foreach (var interceptor in Connections(eventData.Context))
        {
            result = await interceptor.ConnectionDisposingAsync(connection, eventData, result).ConfigureAwait(false);
        }

        return result;
    }

    public void ConnectionDisposed(DbConnection connection, ConnectionEndEventData eventData)
    {
        foreach (var interceptor in Connections(eventData.Context))
        {
            interceptor.ConnectionDisposed(connection, eventData);
        }
    }

    public async Task ConnectionDisposedAsync(DbConnection connection, ConnectionEndEventData eventData)
    {
        foreach (var interceptor in Connections(eventData.Context))
        {
            await interceptor.ConnectionDisposedAsync(connection, eventData).ConfigureAwait(false);
        }
    }

    public void ConnectionFailed(DbConnection connection, ConnectionErrorEventData eventData)
    {
        foreach (var interceptor in Connections(eventData.Context))
        {
            interceptor.ConnectionFailed(connection, eventData);
        }
    }

    public async Task ConnectionFailedAsync(DbConnection connection, ConnectionErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Connections(eventData.Context))
        {
            await interceptor.ConnectionFailedAsync(connection, eventData, cancellationToken).ConfigureAwait(false);
        }
    }

    public void ConnectionCanceled(DbConnection connection, ConnectionEndEventData eventData)
    {
        foreach (var interceptor in Connections(eventData.Context))
        {
            interceptor.ConnectionCanceled(connection, eventData);
        }
    }

    public async Task ConnectionCanceledAsync(DbConnection connection, ConnectionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Connections(eventData.Context))
        {
            await interceptor.ConnectionCanceledAsync(connection, eventData, cancellationToken).ConfigureAwait(false);
        }
    }

    // ---- Transactions: they run on the connection checked when it opened; forwarded when the lease is bound.

    public InterceptionResult<DbTransaction> TransactionStarting(DbConnection connection, TransactionStartingEventData eventData, InterceptionResult<DbTransaction> result)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            result = interceptor.TransactionStarting(connection, eventData, result);
        }

        return result;
    }

    public DbTransaction TransactionStarted(DbConnection connection, TransactionEndEventData eventData, DbTransaction result)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            result = interceptor.TransactionStarted(connection, eventData, result);
        }

        return result;
    }

    public async ValueTask<InterceptionResult<DbTransaction>> TransactionStartingAsync(
        DbConnection connection, TransactionStartingEventData eventData, InterceptionResult<DbTransaction> result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            result = await interceptor.TransactionStartingAsync(connection, eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    public async ValueTask<DbTransaction> TransactionStartedAsync(
        DbConnection connection, TransactionEndEventData eventData, DbTransaction result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            result = await interceptor.TransactionStartedAsync(connection, eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    public DbTransaction TransactionUsed(DbConnection connection, TransactionEventData eventData, DbTransaction result)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            result = interceptor.TransactionUsed(connection, eventData, result);
        }

        return result;
    }

    public async ValueTask<DbTransaction> TransactionUsedAsync(
        DbConnection connection, TransactionEventData eventData, DbTransaction result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            result = await interceptor.TransactionUsedAsync(connection, eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    public InterceptionResult TransactionCommitting(DbTransaction transaction, TransactionEventData eventData, InterceptionResult result)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            result = interceptor.TransactionCommitting(transaction, eventData, result);
        }

        return result;
    }

    public void TransactionCommitted(DbTransaction transaction, TransactionEndEventData eventData)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            interceptor.TransactionCommitted(transaction, eventData);
        }
    }

    public async ValueTask<InterceptionResult> TransactionCommittingAsync(
        DbTransaction transaction, TransactionEventData eventData, InterceptionResult result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            result = await interceptor.TransactionCommittingAsync(transaction, eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    public async Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            await interceptor.TransactionCommittedAsync(transaction, eventData, cancellationToken).ConfigureAwait(false);
        }
    }

    public InterceptionResult TransactionRollingBack(DbTransaction transaction, TransactionEventData eventData, InterceptionResult result)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            result = interceptor.TransactionRollingBack(transaction, eventData, result);
        }

        return result;
    }

    public void TransactionRolledBack(DbTransaction transaction, TransactionEndEventData eventData)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            interceptor.TransactionRolledBack(transaction, eventData);
        }
    }

    public async ValueTask<InterceptionResult> TransactionRollingBackAsync(
        DbTransaction transaction, TransactionEventData eventData, InterceptionResult result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            result = await interceptor.TransactionRollingBackAsync(transaction, eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    public async Task TransactionRolledBackAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            await interceptor.TransactionRolledBackAsync(transaction, eventData, cancellationToken).ConfigureAwait(false);
        }
    }

    public InterceptionResult CreatingSavepoint(DbTransaction transaction, TransactionEventData eventData, InterceptionResult result)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            result = interceptor.CreatingSavepoint(transaction, eventData, result);
        }

        return result;
    }

    public void CreatedSavepoint(DbTransaction transaction, TransactionEventData eventData)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            interceptor.CreatedSavepoint(transaction, eventData);
        }
    }

    public async ValueTask<InterceptionResult> CreatingSavepointAsync(
        DbTransaction transaction, TransactionEventData eventData, InterceptionResult result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            result = await interceptor.CreatingSavepointAsync(transaction, eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    public async Task CreatedSavepointAsync(DbTransaction transaction, TransactionEventData eventData, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            await interceptor.CreatedSavepointAsync(transaction, eventData, cancellationToken).ConfigureAwait(false);
        }
    }

    public InterceptionResult RollingBackToSavepoint(DbTransaction transaction, TransactionEventData eventData, InterceptionResult result)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            result = interceptor.RollingBackToSavepoint(transaction, eventData, result);
        }

        return result;
    }

    public void RolledBackToSavepoint(DbTransaction transaction, TransactionEventData eventData)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            interceptor.RolledBackToSavepoint(transaction, eventData);
        }
    }

    public async ValueTask<InterceptionResult> RollingBackToSavepointAsync(
        DbTransaction transaction, TransactionEventData eventData, InterceptionResult result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            result = await interceptor.RollingBackToSavepointAsync(transaction, eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    public async Task RolledBackToSavepointAsync(DbTransaction transaction, TransactionEventData eventData, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            await interceptor.RolledBackToSavepointAsync(transaction, eventData, cancellationToken).ConfigureAwait(false);
        }
    }

    public InterceptionResult ReleasingSavepoint(DbTransaction transaction, TransactionEventData eventData, InterceptionResult result)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            result = interceptor.ReleasingSavepoint(transaction, eventData, result);
        }

        return result;
    }

    public void ReleasedSavepoint(DbTransaction transaction, TransactionEventData eventData)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            interceptor.ReleasedSavepoint(transaction, eventData);
        }
    }

    public async ValueTask<InterceptionResult> ReleasingSavepointAsync(
        DbTransaction transaction, TransactionEventData eventData, InterceptionResult result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            result = await interceptor.ReleasingSavepointAsync(transaction, eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    public async Task ReleasedSavepointAsync(DbTransaction transaction, TransactionEventData eventData, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            await interceptor.ReleasedSavepointAsync(transaction, eventData, cancellationToken).ConfigureAwait(false);
        }
    }

    public void TransactionFailed(DbTransaction transaction, TransactionErrorEventData eventData)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            interceptor.TransactionFailed(transaction, eventData);
        }
    }

    public async Task TransactionFailedAsync(DbTransaction transaction, TransactionErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in Transactions(eventData.Context))
        {
            await interceptor.TransactionFailedAsync(transaction, eventData, cancellationToken).ConfigureAwait(false);
        }
    }

    // ---- SaveChanges: forwarded when the lease is bound (its commands are guarded like any other).

    public InterceptionResult<int> SavingChanges(DbContextEventData eventData, InterceptionResult<int> result)
    {
        foreach (var interceptor in SaveChanges(eventData.Context))
        {
            result = interceptor.SavingChanges(eventData, result);
        }

        return result;
    }

    public async ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in SaveChanges(eventData.Context))
        {
            result = await interceptor.SavingChangesAsync(eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    public int SavedChanges(SaveChangesCompletedEventData eventData, int result)
    {
        foreach (var interceptor in SaveChanges(eventData.Context))
        {
            result = interceptor.SavedChanges(eventData, result);
        }

        return result;
    }

    public async ValueTask<int> SavedChangesAsync(SaveChangesCompletedEventData eventData, int result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in SaveChanges(eventData.Context))
        {
            result = await interceptor.SavedChangesAsync(eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    public void SaveChangesFailed(DbContextErrorEventData eventData)
    {
        foreach (var interceptor in SaveChanges(eventData.Context))
        {
            interceptor.SaveChangesFailed(eventData);
        }
    }

    public async Task SaveChangesFailedAsync(DbContextErrorEventData eventData, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in SaveChanges(eventData.Context))
        {
            await interceptor.SaveChangesFailedAsync(eventData, cancellationToken).ConfigureAwait(false);
        }
    }

    public void SaveChangesCanceled(DbContextEventData eventData)
    {
        foreach (var interceptor in SaveChanges(eventData.Context))
        {
            interceptor.SaveChangesCanceled(eventData);
        }
    }

    public async Task SaveChangesCanceledAsync(DbContextEventData eventData, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in SaveChanges(eventData.Context))
        {
            await interceptor.SaveChangesCanceledAsync(eventData, cancellationToken).ConfigureAwait(false);
        }
    }

    public InterceptionResult ThrowingConcurrencyException(ConcurrencyExceptionEventData eventData, InterceptionResult result)
    {
        foreach (var interceptor in SaveChanges(eventData.Context))
        {
            result = interceptor.ThrowingConcurrencyException(eventData, result);
        }

        return result;
    }

    public async ValueTask<InterceptionResult> ThrowingConcurrencyExceptionAsync(
        ConcurrencyExceptionEventData eventData, InterceptionResult result, CancellationToken cancellationToken = default)
    {
        foreach (var interceptor in SaveChanges(eventData.Context))
        {
            result = await interceptor.ThrowingConcurrencyExceptionAsync(eventData, result, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }
}
